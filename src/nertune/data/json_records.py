"""JSON and JSONL: token+tag and span-annotated records for training (`read_json`), `{"text"}`/`{"tokens"}`
records as predict input (`iter_jsonl_records`); both iterate JSON lines with `iter_json_lines`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets

from nertune.data.annotation_tools import LabelStudioStats, is_label_studio_task, label_studio_record, task_where
from nertune.data.contract import SPANS, TAG_FIELDS, TagChecker, empty_columns, spans_of_tags, tag_strings, to_dataset
from nertune.data.errors import DataError
from nertune.data.lines import read_lines
from nertune.data.records import InputRecord
from nertune.data.spans import SpanStats, tag_words_from_spans

# Where span-annotated JSON records keep their character spans: spaCy/Doccano `entities`, Prodigy `spans`,
# Doccano's sequence-labelling export `label` (a list of `[start, end, type]`; Label Studio's JSON-MIN export a
# list of `{"start", "end", "labels"}`) or CLUENER2020's `label` (a
# mapping type -> mention -> `[[start, end_inclusive], ...]`).
SPAN_FIELDS = ("entities", "spans", "label")


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """`(line number, parsed value)` for every non-blank line of a JSONL file (always UTF-8)."""
    for line_no, text in read_lines(path, setting=None):
        if not text.strip():
            continue
        try:
            yield line_no, json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"not valid JSON ({err.msg} at column {err.colno}): {text[:80]!r}", path, line_no) from None


def _iter_json_records(path: Path) -> Iterator[tuple[Any, int | None, str]]:
    """Yield `(record, line or None, "record N: ")` from a JSON array/object or a JSONL file."""
    if path.suffix.lower() != ".jsonl":
        text = "\n".join(line for _, line in read_lines(path, setting=None))
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            # "Extra data" after a first complete value is how JSONL looks to a JSON parser.
            if not err.msg.startswith("Extra data"):
                raise DataError(f"invalid JSON: {err.msg} (column {err.colno})", path, err.lineno) from None
        else:
            if isinstance(data, dict) and "tokens" not in data and "text" not in data:  # not one record
                lists = [key for key, value in data.items() if isinstance(value, list)]
                if len(lists) != 1:
                    raise DataError(
                        "expected a list of records, or an object with exactly one list of records; "
                        f"found top-level keys {sorted(data)!r}",
                        path,
                    )
                data = data[lists[0]]
            records = data if isinstance(data, list) else [data]
            for index, record in enumerate(records):
                yield record, None, f"record {index}: "
            return
    for line_no, record in iter_json_lines(path):
        yield record, line_no, ""


def _span_tuples(spans: Any, field: str, where: str, path: Path, line: int | None) -> list[tuple[int, int, str]]:
    """`[start, end, type]` lists or `{"start"|"start_offset", "end"|"end_offset", "label"}` objects."""
    if not isinstance(spans, list):
        raise DataError(f"{where}'{field}' must be a list of [start, end, type] spans, got {spans!r:.80}", path, line)
    out = []
    for span in spans:
        if isinstance(span, dict) and "label" not in span and isinstance(span.get("labels"), list):
            # Label Studio's JSON-MIN export: {"start", "end", "text", "labels": [...]}, one span per label.
            out += _span_tuples([{**span, "label": label} for label in span["labels"]], field, where, path, line)
            continue
        if isinstance(span, dict):
            start = span.get("start", span.get("start_offset"))
            end = span.get("end", span.get("end_offset"))
            span_tuple = (start, end, span.get("label"))
        elif isinstance(span, (list, tuple)) and len(span) == 3:
            span_tuple = tuple(span)
        else:
            span_tuple = None
        if (
            span_tuple is None
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in span_tuple[:2])
            or not isinstance(span_tuple[2], str)
        ):
            raise DataError(
                f'{where}\'{field}\': expected [start, end, type] or {{"start", "end", "label"}} '
                f"with integer offsets, got {span!r:.80}",
                path,
                line,
            )
        out.append(span_tuple)
    return out


def _is_offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cluener_spans(label: dict, text: str, where: str, path: Path, line: int | None) -> list[tuple[int, int, str]]:
    """CLUENER2020's `{"type": {"mention": [[start, end_inclusive], ...]}}` as `(start, end, type)` spans with
    an exclusive end; the mention must be the text at its offsets."""
    spans = []
    for type_, mentions in label.items():
        if not isinstance(mentions, dict):
            raise DataError(
                f"{where}'label' (CLUENER): type {type_!r} must map each mention to its "
                f"[[start, end], ...] offsets, got {mentions!r:.80}",
                path,
                line,
            )
        for mention, offsets in mentions.items():
            if not isinstance(offsets, list) or not offsets:
                raise DataError(
                    f"{where}'label' (CLUENER): {type_!r} mention {mention!r} needs a list of "
                    f"[start, end] offsets (end inclusive), got {offsets!r:.80}",
                    path,
                    line,
                )
            for pair in offsets:
                if not (isinstance(pair, list) and len(pair) == 2 and all(_is_offset(x) for x in pair)):
                    raise DataError(
                        f"{where}'label' (CLUENER): {type_!r} mention {mention!r}: expected "
                        f"[start, end] integer offsets (end inclusive), got {pair!r:.80}",
                        path,
                        line,
                    )
                start, last = pair
                if not 0 <= start <= last < len(text):
                    raise DataError(
                        f"{where}{type_!r} mention {mention!r} at [{start}, {last}] (end inclusive) is "
                        f"not inside the text ({len(text)} characters)",
                        path,
                        line,
                    )
                if text[start : last + 1] != mention:
                    raise DataError(
                        f"{where}{type_!r} mention {mention!r} at [{start}, {last}] (end inclusive) "
                        f"does not match the text there: {text[start : last + 1]!r}",
                        path,
                        line,
                    )
                spans.append((start, last + 1, type_))
    return spans


def read_json(
    path: str | Path,
    label_names: Sequence[str] | None = None,
    span_alignment: str = "split",
    *,
    tokens_field: str | None = None,
    tags_field: str | None = None,
    nested: str = "outermost",
    stats: SpanStats | None = None,
) -> datasets.Dataset:
    """Read JSON (a list of records, or an object holding one list) or JSONL (one record a line).

    A record has `tokens` (list of str) and tags under `ner_tags`, `tags` or `labels`: strings, or
    integers looked up in `label_names`; or `text` and character spans under `entities`, `spans` or
    `label` (spaCy, Prodigy, Doccano; CLUENER2020's `label` mapping type -> mention -> inclusive offsets,
    each mention checked against the text), split into words by `words.split_words` (every Chinese
    character a word) and tagged IOB2 (`span_alignment`, `nested`: see `spans.tag_words_from_spans`); with
    `nested="keep"` every level is in a `spans` column too. What that changed (words split, nested spans) is
    logged as the file's load summary and added to `stats` when given.
    `tokens_field` / `tags_field` (`data.tokens_field`, `data.tags_field`) name other fields for the words and
    the tags. An optional `document_id` is kept (default `""`), and an integer `sentence_id` (default: the
    record's position). Label Studio's full JSON export (tasks with `annotations`) is read through
    `annotation_tools.label_studio_record`. JSONL is recognised by the `.jsonl` extension or by its content.
    """
    path = Path(path)
    columns = empty_columns()
    if nested == "keep":
        columns[SPANS] = []
    check_tag = TagChecker()
    file_stats = SpanStats(kept_nested=nested == "keep")
    label_studio = LabelStudioStats()
    sentence_ids: set[int] = set()
    for record, line, where in _iter_json_records(path):
        if not isinstance(record, dict):
            raise DataError(f"{where}expected an object, got {type(record).__name__}: {record!r:.80}", path, line)
        if is_label_studio_task(record):
            where = task_where(record, where)
            record = label_studio_record(record, where, path, line, label_studio)
            if record is None:
                continue
        tokens = record.get(tokens_field or "tokens")
        from_spans, word_spans = False, None
        if tokens is None and tokens_field is None and isinstance(record.get("text"), str):
            span_field = next((name for name in SPAN_FIELDS if name in record), None)
            if span_field is None:
                raise DataError(
                    f"{where}a record with 'text' needs its entity spans under one of "
                    f"{list(SPAN_FIELDS)} (an empty list for none); keys: {sorted(record)!r}",
                    path,
                    line,
                )
            if span_field == "label" and isinstance(record["label"], dict):
                spans = _cluener_spans(record["label"], record["text"], where, path, line)
            else:
                spans = _span_tuples(record[span_field], span_field, where, path, line)
            try:
                tagged = tag_words_from_spans(record["text"], spans, span_alignment, nested)
            except ValueError as e:
                raise DataError(f"{where}{e}", path, line) from None
            file_stats.add(tagged, record["text"], f"{path}:{line}" if line else f"{path}: {where.rstrip(': ')}")
            tokens, word_spans = tagged.words, tagged.spans
            record, from_spans = {**record, "ner_tags": tagged.tags}, True
        if tokens is None:
            wanted = (
                f"'{tokens_field}' (data.tokens_field)" if tokens_field else "'tokens' (or 'text' with entity spans)"
            )
            raise DataError(
                f"{where}missing field {wanted}; keys: {sorted(record)!r}; data.tokens_field names the words' field",
                path,
                line,
            )
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(
                f"{where}'{tokens_field or 'tokens'}' must be a list of strings, got {tokens!r:.80}", path, line
            )
        fields = ["ner_tags"] if from_spans else [tags_field] if tags_field else list(TAG_FIELDS)
        tag_field = next((name for name in fields if name in record), None)
        if tag_field is None:
            raise DataError(
                f"{where}missing tags: expected {' or '.join(map(repr, fields))} (keys: {sorted(record)!r}); "
                "data.tags_field names the tags' field",
                path,
                line,
            )
        tags = record[tag_field]
        if not isinstance(tags, list):
            raise DataError(f"{where}'{tag_field}' must be a list, got {tags!r:.80}", path, line)
        if len(tags) != len(tokens):
            raise DataError(f"{where}{len(tokens)} tokens but {len(tags)} tags in '{tag_field}'", path, line)
        document_id = record.get("document_id", "")
        if not isinstance(document_id, (str, int)) or isinstance(document_id, bool):
            raise DataError(f"{where}'document_id' must be a string, got {document_id!r}", path, line)
        columns["tokens"].append(tokens)
        columns["ner_tags"].append(tag_strings(tags, label_names, where, path, line, check_tag))
        columns["document_id"].append(str(document_id))
        columns["sentence_id"].append(
            _sentence_id(record, len(columns["sentence_id"]), sentence_ids, where, path, line)
        )
        columns["line"].append(line or 0)
        if SPANS in columns:
            columns[SPANS].append(word_spans if word_spans is not None else spans_of_tags(columns["ner_tags"][-1]))
    label_studio.log(path)
    if not columns["tokens"]:
        skipped = (
            f" ({len(label_studio.skipped)} Label Studio tasks without an annotation)" if label_studio.tasks else ""
        )
        raise DataError(f"no records found{skipped}", path)
    if file_stats.records:
        file_stats.log(path)
        if stats is not None:
            stats.merge(file_stats)
    return to_dataset(columns)


def _sentence_id(record: dict, position: int, seen: set[int], where: str, path: Path, line: int | None) -> int:
    """A record's own integer `sentence_id` (an exported annotation keeps the id of its sentence in the source
    file), else its position in this file (other values, e.g. strings, are not the contract's ids)."""
    value = record.get("sentence_id")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        value = position
    if value in seen:
        raise DataError(f"{where}sentence_id {value} appears twice in the file", path, line)
    seen.add(value)
    return value


def iter_jsonl_records(path: str | Path) -> Iterator[InputRecord]:
    """Predict input, streamed: `{"text": "..."}` or `{"tokens": [...]}` per line, optionally with an `id` and a
    `document_id` (records sharing one are the sentences of a document, in file order); blank lines are skipped."""
    for i, value in iter_json_lines(path):
        if not isinstance(value, dict):
            raise DataError(
                f'expected an object {{"text": ...}} or {{"tokens": [...]}}, got {json.dumps(value)[:80]!r}', path, i
            )
        if ("text" in value) == ("tokens" in value):
            raise DataError(f"a record needs exactly one of 'text' or 'tokens', it has keys {sorted(value)}", path, i)
        record = InputRecord(id=value.get("id"), has_id="id" in value, line=i)
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
        yield record
