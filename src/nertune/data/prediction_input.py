"""The one entry point for `nertune predict` input: the format (by `formats`), then its records."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .conll import read_conll_records
from .errors import DataError
from .formats import FileFormat, detect_format, explain
from .json_records import read_jsonl_records
from .records import ConllLayout, InputRecord, read_input_lines, read_text_records
from ..errors import RequestError

PREDICTION_INPUT_FORMATS = ("text", "jsonl", "conll")


def prediction_input_format(path: str | Path, given: str | None = None, *, encoding: str = "utf-8",
                            layout: ConllLayout | None = None) -> FileFormat:
    """The input format, named 'text', 'jsonl' or 'conll': `given` (--format), else by the extension or
    the content (`formats.detect_format`, logged)."""
    found = detect_format(path, given, setting="--format", encoding=encoding,
                          delimiter=layout.delimiter if layout else None,
                          comment_prefix=layout.comment_prefix if layout else None)
    return replace(found, name="jsonl") if found.name == "json" else found


def read_prediction_input(
    path: str | Path, fmt: str | FileFormat | None = None, *, documents: bool = False, encoding: str = "utf-8",
    layout: ConllLayout | None = None,
) -> tuple[str, list[InputRecord], list[str] | None]:
    """`(format, records, lines)` of a predict input file; `lines` are the file's lines for CoNLL input
    (its output is those lines with a tag column added), else None.

    `fmt` is 'text', 'jsonl' or 'conll', or what `prediction_input_format` found, or None to tell it
    from the file.
    Text: one text per line, with `documents` blank lines separate documents. JSONL: `{"text"}` or
    `{"tokens"}` records with an optional `id` and `document_id`. CoNLL: tokens in `layout.token_column`,
    labelled or not. Errors of a file whose format was only sniffed say so.
    """
    path = Path(path)
    found = fmt if isinstance(fmt, FileFormat) else prediction_input_format(path, fmt, encoding=encoding, layout=layout)
    fmt = found.name
    if fmt not in PREDICTION_INPUT_FORMATS:
        raise RequestError(f"unknown input format {fmt!r} (one of {PREDICTION_INPUT_FORMATS})")
    if documents and fmt != "text":
        raise RequestError(f"--documents is for text input; {fmt} input marks documents itself "
                         "(CoNLL: -DOCSTART- lines, JSONL: a document_id field)")
    if encoding != "utf-8" and fmt == "jsonl":
        raise RequestError("--encoding is for text and CoNLL input; JSON is UTF-8 by its standard")
    lines = None
    try:
        if fmt == "text":
            records = read_text_records(path, documents, encoding)
        elif fmt == "jsonl":
            records = read_jsonl_records(path)
        else:
            lines = read_input_lines(path, encoding)
            records = read_conll_records(path, lines, layout)
    except DataError as err:
        raise explain(err, found) from None
    return fmt, records, lines
