"""The one entry point for `nertune predict` input: the format (by `formats`), then its records."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from nertune.data.conll import iter_conll_records
from nertune.data.errors import DataError
from nertune.data.formats import FileFormat, detect_format, explain
from nertune.data.json_records import iter_jsonl_records
from nertune.data.records import ConllLayout, InputRecord, iter_input_lines, iter_text_records
from nertune.errors import RequestError

PREDICTION_INPUT_FORMATS = ("text", "jsonl", "conll")


def prediction_input_format(
    path: str | Path, given: str | None = None, *, encoding: str = "utf-8", layout: ConllLayout | None = None
) -> FileFormat:
    """The input format, named 'text', 'jsonl' or 'conll': `given` (--format), else by the extension or
    the content (`formats.detect_format`, logged)."""
    found = detect_format(
        path,
        given,
        setting="--format",
        encoding=encoding,
        delimiter=layout.delimiter if layout else None,
        comment_prefix=layout.comment_prefix if layout else None,
    )
    return replace(found, name="jsonl") if found.name == "json" else found


def iter_prediction_input(
    path: str | Path,
    fmt: str | FileFormat | None = None,
    *,
    documents: bool = False,
    encoding: str = "utf-8",
    layout: ConllLayout | None = None,
    warn: bool = True,
) -> tuple[str, Iterator[InputRecord]]:
    """`(format, records)` of a predict input file, the records streamed one at a time (memory does not grow
    with the file); for CoNLL input, `iter_input_lines` streams the lines its output is written back from.

    `fmt` is 'text', 'jsonl' or 'conll', or what `prediction_input_format` found, or None to tell it
    from the file.
    Text: one text per line, with `documents` blank lines separate documents. JSONL: `{"text"}` or
    `{"tokens"}` records with an optional `id` and `document_id`. CoNLL: tokens in `layout.token_column`,
    labelled or not. Options are checked here; a bad line raises `DataError` when it is reached. Errors of a
    file whose format was only sniffed say so. `warn`: log what looks wrong but is read (CoNLL '#' words).
    """
    path = Path(path)
    found = fmt if isinstance(fmt, FileFormat) else prediction_input_format(path, fmt, encoding=encoding, layout=layout)
    fmt = found.name
    if fmt not in PREDICTION_INPUT_FORMATS:
        raise RequestError(f"unknown input format {fmt!r} (one of {PREDICTION_INPUT_FORMATS})")
    if documents and fmt != "text":
        raise RequestError(
            f"--documents is for text input; {fmt} input marks documents itself "
            "(CoNLL: -DOCSTART- lines, JSONL: a document_id field)"
        )
    if encoding != "utf-8" and fmt == "jsonl":
        raise RequestError("--encoding is for text and CoNLL input; JSON is UTF-8 by its standard")
    if fmt == "text":
        records = iter_text_records(path, documents, encoding)
    elif fmt == "jsonl":
        records = iter_jsonl_records(path)
    else:
        records = iter_conll_records(path, iter_input_lines(path, encoding), layout, warn=warn)
    return fmt, _explained(records, found)


def _explained(records: Iterator[InputRecord], found: FileFormat) -> Iterator[InputRecord]:
    try:
        yield from records
    except DataError as err:
        raise explain(err, found) from None


def read_prediction_input(
    path: str | Path,
    fmt: str | FileFormat | None = None,
    *,
    documents: bool = False,
    encoding: str = "utf-8",
    layout: ConllLayout | None = None,
) -> tuple[str, list[InputRecord], list[str] | None]:
    """`(format, records, lines)` of a predict input file, read whole (`iter_prediction_input` streams it);
    `lines` are the file's lines for CoNLL input (its output is those lines with a tag column added), else None."""
    fmt, records = iter_prediction_input(path, fmt, documents=documents, encoding=encoding, layout=layout)
    records = list(records)
    return fmt, records, list(iter_input_lines(path, encoding)) if fmt == "conll" else None
