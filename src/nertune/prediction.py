"""`nertune predict`: reading a text, JSONL or CoNLL file, predicting it with a `NerPredictor`, writing results."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex

from .config import RecipeError, load_recipe
from .data import DOCSTART, DataError, read_lines, split_columns
from .errors import PathNotFoundError, RequestError
from .predictor import NerPredictor
from .words import split_words

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Predicting files (`nertune predict`)

INPUT_FORMATS = ("text", "jsonl", "conll")
OUTPUT_FORMATS = ("jsonl", "conll")
_CONLL_SUFFIXES = (".conll", ".tsv", ".bio", ".iob", ".iob2", ".bioes")


@dataclass
class _Record:
    """One unit of input: a text or pre-split tokens, with what writing the output needs."""

    text: str | None = None
    tokens: list[str] | None = None
    id: Any = None
    has_id: bool = False
    line: int = 0  # 1-based line of the record (CoNLL: of its first token)
    token_lines: list[int] | None = None  # CoNLL: index in the file's lines of each token
    document_id: str = ""  # CoNLL: from -DOCSTART- lines; JSONL: the `document_id` field; "" for none


_TAG = regex.compile(r"(?:O|[BIESLU]-\S+)")


def _input_format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix in _CONLL_SUFFIXES:
        return "conll"
    if suffix in (".txt", ""):
        return "text"
    # Corpora in the wild are named eng.testb, wnut17.dev ...: sniff. CoNLL when the file starts with
    # -DOCSTART- or its first lines all end in a tag column; JSONL when it starts with `{`; else text.
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        lines = [line.split() for line in itertools.islice(f, 200) if line.strip()][:20]
    if lines and lines[0][0].startswith("{"):
        found = "jsonl"
    elif lines and (lines[0][0] == DOCSTART or all(len(w) >= 2 and _TAG.fullmatch(w[-1]) for w in lines)):
        found = "conll"
    else:
        found = "text"
    logger.info("%s: read as %s from its content (extension %r; --format sets it)", path, found, suffix)
    return found


def _output_format(path: Path, given: str | None, input_format: str) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix in _CONLL_SUFFIXES or (suffix == ".txt" and input_format == "conll"):
        return "conll"
    raise RequestError(f"cannot tell the output format from {path.name!r}: use a .jsonl or .conll file name, "
                     "or --output-format jsonl|conll")


def _read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    return [line for _, line in read_lines(path, encoding, hint="--encoding sets the input's")]


def read_text_records(path: Path, documents: bool = False, encoding: str = "utf-8") -> list[_Record]:
    """One text per line; a blank line is an empty text (it keeps its position). With `documents`, the
    lines are sentences and blank lines separate documents (whose sentences are each other's context)."""
    records, n_documents, previous_blank = [], 0, True
    for i, line in enumerate(_read_lines(path, encoding), start=1):
        blank = not line.strip()
        if documents and not blank and previous_blank:
            n_documents += 1
        records.append(_Record(text=line, line=i, document_id=f"doc{n_documents}" if documents and not blank else ""))
        previous_blank = blank
    return records


def read_jsonl_records(path: Path) -> list[_Record]:
    """`{"text": "..."}` or `{"tokens": [...]}` per line, optionally with an `id` and a `document_id`
    (records sharing one are the sentences of a document, in file order); blank lines are skipped."""
    records = []
    for i, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg} at column {e.colno}): {line[:80]!r}", path, i) from None
        if not isinstance(value, dict):
            raise DataError(f'expected an object {{"text": ...}} or {{"tokens": [...]}}, got {line[:80]!r}', path, i)
        if ("text" in value) == ("tokens" in value):
            raise DataError(f"a record needs exactly one of 'text' or 'tokens', it has keys {sorted(value)}", path, i)
        record = _Record(id=value.get("id"), has_id="id" in value, line=i)
        if "document_id" in value:
            document_id = value["document_id"]
            if not isinstance(document_id, (str, int)) or isinstance(document_id, bool):
                raise DataError(f"'document_id' must be a string or an integer, got {document_id!r:.80}", path, i)
            record.document_id = str(document_id)
        if "text" in value:
            if not isinstance(value["text"], str):
                raise DataError(f"'text' must be a string, got {value['text']!r:.80}", path, i)
            record.text = value["text"]
        else:
            tokens = value["tokens"]
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise DataError(f"'tokens' must be a list of strings, got {tokens!r:.80}", path, i)
            record.tokens = tokens
        records.append(record)
    return records


@dataclass
class ConllLayout:
    """How to read a CoNLL input: defaults from the model's training recipe (`data.token_column`,
    `data.delimiter`, `data.comment_prefix`), so a model trained on GermEval reads GermEval."""

    token_column: int = 0
    delimiter: str | None = None
    comment_prefix: str | None = None

    def is_comment(self, line: str) -> bool:
        return bool(self.comment_prefix) and line.startswith(self.comment_prefix)


def read_conll_records(path: Path, lines: list[str], layout: ConllLayout | None = None) -> list[_Record]:
    """Sentences of a CoNLL file, labelled or not: the token is in `layout.token_column` (the first by
    default), blank lines separate sentences, `-DOCSTART-` lines documents; comment lines are skipped."""
    layout = layout or ConllLayout()
    records: list[_Record] = []
    current: _Record | None = None
    document_id, n_documents = "", 0
    hash_lines = []  # "#" in the first column while the words are elsewhere: GermEval-style comments?
    for index, line in enumerate(lines):
        stripped = line.rstrip(" \t")
        if stripped.strip() and layout.is_comment(stripped):
            continue
        fields = split_columns(stripped, layout.delimiter) if stripped.strip() else []
        if fields and fields[0] == DOCSTART:
            document_id, n_documents = f"doc{n_documents}", n_documents + 1
        if not fields or fields[0] == DOCSTART:
            current = None
            continue
        try:
            token = fields[layout.token_column]
        except IndexError:
            hint = "; a comment line? --comment-prefix skips them" if stripped.startswith("#") else ""
            raise DataError(f"no token column {layout.token_column} in {line!r} ({len(fields)} columns; "
                            f"--token-column sets it{hint})", path, index + 1) from None
        if not token:
            raise DataError(f"empty token in column {layout.token_column}: {line!r}", path, index + 1)
        if fields[0] == "#" and layout.token_column != 0:
            hash_lines.append(index + 1)
        if current is None:
            current = _Record(tokens=[], token_lines=[], line=index + 1, document_id=document_id)
            records.append(current)
        current.tokens.append(token)
        current.token_lines.append(index)
    if hash_lines:
        logger.warning("%s: %d lines start with a '#' column (first: line %d) and are read as words; if they are "
                       "comments, --comment-prefix '#' skips them", path, len(hash_lines), hash_lines[0])
    return records


def _result_record(record: _Record, result: dict[str, Any], input_format: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": record.id} if record.has_id else {}
    if input_format == "conll":
        out["line"] = record.line
    out.update(result)
    return out


def _write_conll(path: Path, records: list[_Record], results: list[dict], lines: list[str] | None,
                 layout: ConllLayout | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        if lines is not None:
            # CoNLL input: every line as it was, the predicted tag appended as a new last column.
            tags = {}
            for record, result in zip(records, results):
                tags.update(zip(record.token_lines, result["tags"]))
            for index, line in enumerate(lines):
                line = line.rstrip(" \t")
                if not line or (layout is not None and layout.is_comment(line)):
                    f.write(f"{line}\n")
                    continue
                delimiter = "\t" if "\t" in line else " "
                tag = tags.get(index, "O")  # -DOCSTART- lines get O, like their other columns
                f.write(f"{line}{delimiter}{tag}\n")
            return
        for result in results:
            if not result["words"]:
                continue  # an empty text has no line to write; JSONL output keeps its position
            f.writelines(f"{word}\t{tag}\n" for word, tag in zip(result["words"], result["tags"]))
            f.write("\n")


def run_prediction(model_dir: str | Path, input_path: str | Path, output_path: str | Path,
                   input_format: str | None = None, output_format: str | None = None, batch_size: int = 32,
                   device: str | None = None, precision: str = "auto", documents: bool = False,
                   token_column: int | None = None, comment_prefix: str | None = None,
                   encoding: str = "utf-8") -> int:
    """Predict every record of a text, JSONL or CoNLL file and write JSONL or CoNLL; returns the count.

    Formats default from the file names (input: .jsonl/.json, .conll/.tsv/.bio..., else text; output:
    .jsonl/.json, .conll/.tsv/.bio..., or .txt for CoNLL input). JSONL output has one line per input
    record, in order, with its `id` when the input has one.
    Documents (context for a model trained with `context_size`): CoNLL `-DOCSTART-` lines, the JSONL
    `document_id` field, or, for text with `documents=True`, blocks of lines separated by blank lines.
    Text and CoNLL input are read in `encoding` (output is always UTF-8). CoNLL input is read with the
    training recipe's token column, delimiter and comment prefix unless
    `token_column`/`comment_prefix` say otherwise; comment lines are copied to CoNLL output unchanged.
    """
    from tqdm.auto import tqdm

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise PathNotFoundError(f"input file not found: {input_path}")
    if output_path.resolve() == input_path.resolve():
        raise RequestError(f"--output {output_path} would overwrite the input")
    input_format = _input_format(input_path, input_format)
    output_format = _output_format(output_path, output_format, input_format)
    if input_format not in INPUT_FORMATS or output_format not in OUTPUT_FORMATS:
        raise RequestError(f"unknown format: input {input_format!r} (one of {INPUT_FORMATS}), "
                         f"output {output_format!r} (one of {OUTPUT_FORMATS})")
    if documents and input_format != "text":
        raise RequestError(f"--documents is for text input; {input_format} input marks documents itself "
                         "(CoNLL: -DOCSTART- lines, JSONL: a document_id field)")
    # Read and check the whole input before loading the model: a bad line fails in a second.
    if encoding != "utf-8" and input_format == "jsonl":
        raise RequestError("--encoding is for text and CoNLL input; JSON is UTF-8 by its standard")
    conll_lines = _read_lines(input_path, encoding) if input_format == "conll" else None
    layout = _conll_layout(Path(model_dir), token_column, comment_prefix) if input_format == "conll" else None
    if input_format == "text":
        records = read_text_records(input_path, documents, encoding)
    elif input_format == "jsonl":
        records = read_jsonl_records(input_path)
    else:
        records = read_conll_records(input_path, conll_lines, layout)

    predictor = NerPredictor.from_pretrained(model_dir, device=device, batch_size=batch_size, precision=precision)
    results: list = [None] * len(records)
    chunks = _document_chunks(records, max(1, batch_size) * 16)  # bounds memory on huge files, keeps batches full
    with tqdm(total=len(records), unit="record", desc="predict", disable=len(chunks) <= 1) as progress:
        for chunk in chunks:
            for i, result in zip(chunk, _predict_records(predictor, [records[i] for i in chunk])):
                results[i] = result
            progress.update(len(chunk))

    output_path.parent.mkdir(parents=True, exist_ok=True)
    if output_format == "conll":
        _write_conll(output_path, records, results, conll_lines, layout)
    else:
        with open(output_path, "w", encoding="utf-8") as f:
            for record, result in zip(records, results):
                f.write(json.dumps(_result_record(record, result, input_format), ensure_ascii=False) + "\n")
    logger.info("predicted %d records of %s -> %s (%s)", len(records), input_path, output_path, output_format)
    return len(records)


def _conll_layout(model_dir: Path, token_column: int | None, comment_prefix: str | None) -> ConllLayout:
    layout = ConllLayout()
    recipe_file = model_dir / "config.yaml"
    if recipe_file.is_file():
        try:
            data = load_recipe(recipe_file).data
            layout = ConllLayout(data.token_column, data.delimiter, data.comment_prefix)
        except RecipeError as e:
            logger.warning("%s; reading CoNLL input with the token in the first column", e)
    if token_column is not None:
        layout.token_column = token_column
    if comment_prefix is not None:
        layout.comment_prefix = comment_prefix
    return layout


def _document_chunks(records: Sequence[_Record], size: int) -> list[list[int]]:
    """Record indices in chunks of about `size` that never split a document (its sentences are each
    other's context), documents in order of their first record."""
    documents: dict[Any, list[int]] = {}
    for i, record in enumerate(records):
        documents.setdefault(record.document_id or ("no document", i), []).append(i)
    chunks: list[list[int]] = [[]]
    for indices in documents.values():
        if chunks[-1] and len(chunks[-1]) + len(indices) > size:
            chunks.append([])
        chunks[-1].extend(indices)
    return chunks if chunks[0] else []


def _predict_records(predictor: NerPredictor, records: Iterable[_Record]) -> list[dict[str, Any]]:
    """Texts and token lists of one chunk in one call (documents keep their context), in input order."""
    records = list(records)
    split = [split_words(r.text) if r.tokens is None else None for r in records]
    words = [r.tokens if s is None else [w for w, _, _ in s] for r, s in zip(records, split)]
    tagged = predictor.predict_words(words, [r.document_id for r in records])
    return [predictor.tokens_result(r.tokens, t) if s is None else predictor.text_result(r.text, s, t)
            for r, s, t in zip(records, split, tagged)]
