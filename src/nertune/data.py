"""Reading NER corpora (CoNLL, JSON/JSONL, Hugging Face Hub) into datasets, validating and splitting them.

Every reader returns a `datasets.Dataset` with the columns of the data contract (docs/ARCHITECTURE.md):

- `tokens` (list[str]): the words, exactly as in the source;
- `ner_tags` (list[str]): one tag string per word, as in the source (scheme not converted yet);
- `document_id` (str): `doc0`, `doc1`, ... from `-DOCSTART-` lines, the `document_id` field of
  JSON records, or `""` when unknown (a file without `-DOCSTART-` is one unknown document);
- `sentence_id` (int): 0-based position of the sentence in its file (or Hub split); splitting keeps it,
  so predictions can always be written back in the original order;
- `line` (int): 1-based line where the sentence starts (CoNLL: its first word; JSONL: its record);
  0 when there is no line (JSON arrays, Hub datasets).

`load_splits` is what training calls: it reads the recipe's `data` section, carves missing splits
out of train, converts the tags to the training scheme and checks labels across splits.
Every `DataError` names the file and 1-based line (when there is one) and the offending value.
"""

from __future__ import annotations

import codecs
import json
import logging
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from nertune import schemes
from nertune.assets import resolve_path
from nertune.errors import NertuneError
from nertune.words import tag_words_from_spans

__all__ = [
    "DataError",
    "FEATURES",
    "read_conll",
    "read_json",
    "load_hub_dataset",
    "read_split_file",
    "split_dataset",
    "validate_splits",
    "check_labels",
    "load_splits",
]

logger = logging.getLogger(__name__)

FEATURES = datasets.Features(
    {
        "tokens": datasets.List(datasets.Value("string")),
        "ner_tags": datasets.List(datasets.Value("string")),
        "document_id": datasets.Value("string"),
        "sentence_id": datasets.Value("int64"),
        "line": datasets.Value("int64"),
    }
)

CONLL_EXTENSIONS = (".conll", ".txt", ".tsv", ".bio", ".iob", ".iob2", ".bioes")
JSON_EXTENSIONS = (".json", ".jsonl")
TAG_FIELDS = ("ner_tags", "tags", "labels")  # where JSON records and Hub datasets keep their tags
# Where span-annotated JSON records keep `[start, end, type]` character spans: spaCy/Doccano `entities`,
# Prodigy `spans`, Doccano's sequence-labelling export `label`.
SPAN_FIELDS = ("entities", "spans", "label")
SPLIT_ALIASES = {"validation": "validation", "dev": "validation", "valid": "validation",
                 "val": "validation", "train": "train", "test": "test"}

DOCSTART = "-DOCSTART-"
# Only ASCII whitespace separates columns: str.split() would also split on non-breaking or
# ideographic spaces, which do occur inside tweet tokens and must be preserved exactly.
_ASCII_WS = " \t\n\r\f\v"
_WS_RUN = re.compile(r"[ \t\n\r\f\v]+")
_BOM = b"\xef\xbb\xbf"


class DataError(NertuneError):
    """Bad input data. The message starts with `file:line:` (or `file:`) when they are known."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        if path is not None:
            message = f"{path}:{line}: {message}" if line else f"{path}: {message}"
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.line = line


def _empty_columns() -> dict[str, list]:
    return {name: [] for name in FEATURES}


def _to_dataset(columns: dict[str, list]) -> datasets.Dataset:
    # from_dict rather than from_generator: the generator cache is keyed on the function and its
    # arguments (the path), not the file's content, so an edited file could come back stale.
    return datasets.Dataset.from_dict(columns, features=FEATURES)


class _TagChecker:
    """Validates tag strings with `schemes.parse_tag`, once per distinct tag (a corpus has few)."""

    def __init__(self) -> None:
        self._valid: set[str] = set()

    def __call__(self, tag: Any, path: str | Path | None, line: int | None, where: str = "") -> None:
        if isinstance(tag, str) and tag in self._valid:
            return
        try:
            schemes.parse_tag(tag)
        except schemes.InvalidTagError as err:
            raise DataError(f"{where}invalid tag {tag!r}: {err}", path, line) from None
        self._valid.add(tag)


# --------------------------------------------------------------------------------------------
# CoNLL


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; only encodings that write a newline as b"\\n" (UTF-8, Latin-1, cp1252 ...),
    since lines are split before they are decoded."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
    if "\n".encode(name) != b"\n":
        raise ValueError(f"encoding {encoding!r} is not ASCII-compatible; convert the file to UTF-8 first")
    return name


def read_lines(path: str | Path, encoding: str = "utf-8", hint: str = "set data.encoding") -> Iterator[tuple[int, str]]:
    """`(line number, text without the line ending)` for every line of a text file.

    Binary lines are decoded one by one, so a decoding error names its exact line (a text-mode file
    decodes 8 KiB ahead of the line being read). A UTF-8 byte-order mark is dropped. Lines end at
    \\n only (a \\f or \\u2028 inside a line stays in it); a trailing \\r is dropped.
    """
    encoding = check_encoding(encoding)
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(_BOM) and encoding == "utf-8":
                raw = raw[len(_BOM):]
            try:
                yield line_no, raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(f"not valid {encoding} ({err.reason} at byte {err.start}): {raw[:80]!r}; {hint} "
                                "(e.g. latin-1: the original German CoNLL-2003 files use it)", path, line_no) from None


def split_columns(text: str, delimiter: str | None) -> list[str]:
    """Columns of one non-blank line: `delimiter` if given, else tabs if any, else whitespace runs."""
    if delimiter is not None:
        fields = text.split(delimiter)
    elif "\t" in text:
        fields = text.split("\t")  # tab files may have spaces inside tokens
    else:
        fields = _WS_RUN.split(text.strip(_ASCII_WS))
    return [field.strip(_ASCII_WS) for field in fields]


def _columns_needed(index: int) -> int:
    return index + 1 if index >= 0 else -index


def read_conll(
    path: str | Path,
    token_column: int = 0,
    tag_column: int = -1,
    delimiter: str | None = None,
    comment_prefix: str | None = None,
    encoding: str = "utf-8",
) -> datasets.Dataset:
    """Read a CoNLL-style file: one `token ... tag` line per word, blank lines between sentences.

    Columns are split on `delimiter`, else on tabs when the line has one, else on runs of
    whitespace. `-DOCSTART-` lines start documents `doc0`, `doc1`, ...; sentences before the first
    one (or in a file without any) get document_id `""`. Blank or whitespace-only lines end a
    sentence; CRLF endings, a UTF-8 BOM, trailing whitespace and a missing final newline are fine.
    The number of columns may vary between lines as long as every line has the token and the tag
    column (with the default `tag_column=-1` that means at least 2 columns).
    `encoding` is the file's (an ASCII-compatible one: utf-8, latin-1, cp1252...).
    Lines starting with `comment_prefix` (GermEval's `# source` lines, CoNLL-U's `# text = ...`) are
    skipped and counted in the log; they do not end a sentence. Without it such a line is data.
    """
    # Parsed by hand rather than with datasets' "conll" builder, which silently pads a missing
    # tag column with '' and keeps the BOM inside the first token.
    if token_column == tag_column:
        raise ValueError(f"token_column and tag_column are both {token_column}")
    needed = max(2, _columns_needed(token_column), _columns_needed(tag_column))
    columns = _empty_columns()
    check_tag = _TagChecker()
    document_id = ""
    n_documents = 0
    tokens: list[str] = []
    tags: list[str] = []
    start_line = 0
    n_comments = 0

    def end_sentence() -> None:
        nonlocal tokens, tags
        if tokens:
            columns["tokens"].append(tokens)
            columns["ner_tags"].append(tags)
            columns["document_id"].append(document_id)
            columns["sentence_id"].append(len(columns["sentence_id"]))
            columns["line"].append(start_line)
        tokens, tags = [], []

    for line_no, text in read_lines(path, encoding):
        text = text.rstrip(_ASCII_WS)
        if not text.strip(_ASCII_WS):
            end_sentence()
            continue
        if comment_prefix and text.startswith(comment_prefix):
            n_comments += 1
            continue
        fields = split_columns(text, delimiter)
        if fields[0] == DOCSTART:
            end_sentence()
            document_id = f"doc{n_documents}"
            n_documents += 1
            continue
        n = len(fields)
        if n < needed or token_column % n == tag_column % n:
            hint = " (a comment line? set data.comment_prefix to skip such lines)" if text.startswith("#") else ""
            raise DataError(
                f"expected at least {needed} columns (token column {token_column}, tag column "
                f"{tag_column}), found {n}: {text!r}{hint}",
                path, line_no,
            )
        token, tag = fields[token_column], fields[tag_column]
        if not token:
            raise DataError(f"empty token in column {token_column}: {text!r}", path, line_no)
        check_tag(tag, path, line_no)
        if not tokens:
            start_line = line_no
        tokens.append(token)
        tags.append(tag)
    end_sentence()
    if n_comments:
        logger.info("%s: skipped %d comment lines (starting with %r)", path, n_comments, comment_prefix)
    if not columns["tokens"]:
        raise DataError("no sentences found (empty file, or only blank, comment and -DOCSTART- lines)", path)
    return _to_dataset(columns)


# --------------------------------------------------------------------------------------------
# JSON / JSONL


def _tag_strings(
    tags: Sequence[Any], label_names: Sequence[str] | None, where: str, path: str | Path | None,
    line: int | None, check_tag: _TagChecker,
) -> list[str]:
    """Tags as validated strings; integer tags are looked up in `label_names`."""
    if all(isinstance(t, str) for t in tags):
        for tag in tags:
            check_tag(tag, path, line, where)
        return list(tags)
    # bool is an int subclass, but True as a tag is certainly a mistake.
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in tags):
        bad = [t for t in tags if not isinstance(t, (str, int)) or isinstance(t, bool)]
        kind = f"value {bad[0]!r}" if bad else "a mix of strings and integers"
        raise DataError(f"{where}tags must be all strings or all integers, got {kind}: {list(tags)!r}",
                        path, line)
    if label_names is None:
        raise DataError(
            f"{where}integer tags {list(tags)[:10]!r} need label names: set data.label_names to the "
            "list of tag strings, in id order (e.g. [O, B-PER, I-PER, ...])",
            path, line,
        )
    out = []
    for tag in tags:
        if not 0 <= tag < len(label_names):
            raise DataError(f"{where}tag id {tag} is out of range for {len(label_names)} label names",
                            path, line)
        out.append(label_names[tag])
        check_tag(out[-1], path, line, where)
    return out


def _iter_json_records(path: Path) -> Iterator[tuple[Any, int | None, str]]:
    """Yield `(record, line or None, "record N: ")` from a JSON array/object or a JSONL file."""
    if path.suffix.lower() != ".jsonl":
        text = "\n".join(line for _, line in read_lines(path, hint="JSON is UTF-8 by its standard"))
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            # "Extra data" after a first complete value is how JSONL looks to a JSON parser.
            if not err.msg.startswith("Extra data"):
                raise DataError(f"invalid JSON: {err.msg} (column {err.colno})", path, err.lineno) from None
        else:
            if isinstance(data, dict) and "tokens" not in data:
                lists = [key for key, value in data.items() if isinstance(value, list)]
                if len(lists) != 1:
                    raise DataError(
                        "expected a list of records, or an object with exactly one list of records; "
                        f"found top-level keys {sorted(data)!r}", path)
                data = data[lists[0]]
            records = data if isinstance(data, list) else [data]
            for index, record in enumerate(records):
                yield record, None, f"record {index}: "
            return
    for line_no, text in read_lines(path, hint="JSON is UTF-8 by its standard"):
        if not text.strip():
            continue
        try:
            yield json.loads(text), line_no, ""
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON line: {err.msg} (column {err.colno})", path, line_no) from None


def _span_tuples(spans: Any, field: str, where: str, path: Path, line: int | None) -> list[tuple[int, int, str]]:
    """`[start, end, type]` lists or `{"start"|"start_offset", "end"|"end_offset", "label"}` objects."""
    if not isinstance(spans, list):
        raise DataError(f"{where}'{field}' must be a list of [start, end, type] spans, got {spans!r:.80}", path, line)
    out = []
    for span in spans:
        if isinstance(span, dict):
            start = span.get("start", span.get("start_offset"))
            end = span.get("end", span.get("end_offset"))
            span_tuple = (start, end, span.get("label"))
        elif isinstance(span, (list, tuple)) and len(span) == 3:
            span_tuple = tuple(span)
        else:
            span_tuple = None
        if (span_tuple is None or not all(isinstance(x, int) and not isinstance(x, bool) for x in span_tuple[:2])
                or not isinstance(span_tuple[2], str)):
            raise DataError(f"{where}'{field}': expected [start, end, type] or {{\"start\", \"end\", \"label\"}} "
                            f"with integer offsets, got {span!r:.80}", path, line)
        out.append(span_tuple)
    return out


def read_json(path: str | Path, label_names: Sequence[str] | None = None,
              span_alignment: str = "strict") -> datasets.Dataset:
    """Read JSON (a list of records, or an object holding one list) or JSONL (one record a line).

    A record has `tokens` (list of str) and tags under `ner_tags`, `tags` or `labels`: strings, or
    integers looked up in `label_names`; or `text` and character spans under `entities`, `spans` or
    `label` (spaCy, Prodigy, Doccano), split into words by `words.split_words` and tagged IOB2
    (`span_alignment`: see `words.tag_words_from_spans`). An optional `document_id` is kept (default `""`).
    JSONL is recognised by the `.jsonl` extension or by its content.
    """
    path = Path(path)
    columns = _empty_columns()
    check_tag = _TagChecker()
    for record, line, where in _iter_json_records(path):
        if not isinstance(record, dict):
            raise DataError(f"{where}expected an object, got {type(record).__name__}: {record!r:.80}",
                            path, line)
        tokens = record.get("tokens")
        if tokens is None and isinstance(record.get("text"), str):
            span_field = next((name for name in SPAN_FIELDS if name in record), None)
            if span_field is None:
                raise DataError(f"{where}a record with 'text' needs its entity spans under one of "
                                f"{list(SPAN_FIELDS)} (an empty list for none); keys: {sorted(record)!r}", path, line)
            spans = _span_tuples(record[span_field], span_field, where, path, line)
            try:
                tokens, span_tags = tag_words_from_spans(record["text"], spans, expand=span_alignment == "expand")
            except ValueError as e:
                raise DataError(f"{where}{e}", path, line) from None
            record = {**record, "ner_tags": span_tags}
        if tokens is None:
            raise DataError(f"{where}missing field 'tokens' (or 'text' with entity spans); keys: {sorted(record)!r}",
                            path, line)
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f"{where}'tokens' must be a list of strings, got {tokens!r:.80}", path, line)
        tag_field = next((name for name in TAG_FIELDS if name in record), None)  # span records: ner_tags
        if tag_field is None:
            raise DataError(f"{where}missing tags: expected one of {list(TAG_FIELDS)} "
                            f"(keys: {sorted(record)!r})", path, line)
        tags = record[tag_field]
        if not isinstance(tags, list):
            raise DataError(f"{where}'{tag_field}' must be a list, got {tags!r:.80}", path, line)
        if len(tags) != len(tokens):
            raise DataError(f"{where}{len(tokens)} tokens but {len(tags)} tags in '{tag_field}'",
                            path, line)
        document_id = record.get("document_id", "")
        if not isinstance(document_id, (str, int)) or isinstance(document_id, bool):
            raise DataError(f"{where}'document_id' must be a string, got {document_id!r}", path, line)
        columns["tokens"].append(tokens)
        columns["ner_tags"].append(_tag_strings(tags, label_names, where, path, line, check_tag))
        columns["document_id"].append(str(document_id))
        columns["sentence_id"].append(len(columns["sentence_id"]))
        columns["line"].append(line or 0)
    if not columns["tokens"]:
        raise DataError("no records found", path)
    return _to_dataset(columns)


# --------------------------------------------------------------------------------------------
# Hugging Face Hub


def load_hub_dataset(
    name: str,
    config: str | None = None,
    revision: str | None = None,
    tag_column_name: str | None = None,
    label_names: Sequence[str] | None = None,
) -> datasets.DatasetDict:
    """Load a Hub dataset with `datasets.load_dataset` and bring every split to the data contract.

    The tag column is `tag_column_name`, else the first of `ner_tags`, `tags`, `labels`. ClassLabel
    ids become their names; plain integer ids need `label_names`. Split names `dev`, `valid` and
    `val` become `validation`; other columns (pos_tags, id, ...) are dropped.
    """
    what = f"Hub dataset {name!r}" + (f" config {config!r}" if config else "") + (
        f" revision {revision!r}" if revision else "")
    try:
        raw = datasets.load_dataset(name, config, revision=revision)
    except (OSError, ValueError, ConnectionError) as err:
        raise DataError(f"could not load {what} (data.dataset_name): {err}") from err
    if not isinstance(raw, datasets.DatasetDict):
        raise DataError(f"{what}: expected a DatasetDict of splits, got {type(raw).__name__}")
    out = {}
    for split, ds in raw.items():
        target = SPLIT_ALIASES.get(split, split)
        if target in out:
            raise DataError(f"{what}: splits {sorted(raw)} give two {target!r} splits")
        out[target] = _hub_split(ds, f"{what} split {split!r}", tag_column_name, label_names)
    return datasets.DatasetDict(out)


def _hub_split(
    ds: datasets.Dataset, what: str, tag_column_name: str | None, label_names: Sequence[str] | None
) -> datasets.Dataset:
    if "tokens" not in ds.column_names:
        raise DataError(f"{what}: no 'tokens' column (columns: {ds.column_names})")
    candidates = [tag_column_name] if tag_column_name else list(TAG_FIELDS)
    tag_col = next((c for c in candidates if c in ds.column_names), None)
    if tag_col is None:
        raise DataError(f"{what}: no tag column {candidates} (columns: {ds.column_names}); "
                        "set the tag column name")
    feature = getattr(ds.features[tag_col], "feature", None)
    if isinstance(feature, datasets.ClassLabel):
        label_names = feature.names  # the dataset's own names win over the recipe's
    check_tag = _TagChecker()
    has_doc = "document_id" in ds.column_names

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        tags = [_tag_strings(t, label_names, f"{what} example {i}: ", None, None, check_tag)
                for t, i in zip(batch[tag_col], indices)]
        docs = [str(d) for d in batch["document_id"]] if has_doc else [""] * len(indices)
        return {"tokens": batch["tokens"], "ner_tags": tags, "document_id": docs,
                "sentence_id": indices, "line": [0] * len(indices)}

    return ds.map(convert, batched=True, with_indices=True, remove_columns=ds.column_names,
                  features=FEATURES, desc="converting tags")


# --------------------------------------------------------------------------------------------
# Files by format


def _resolve(path: str | Path, base_dir: str | Path, key: str | None) -> Path:
    """`assets.resolve_path` (plain or `pkg://` path), with the recipe key in the error."""
    try:
        return resolve_path(path, base_dir)
    except FileNotFoundError as err:
        raise DataError(f"{key + ': ' if key else ''}file not found: {err}") from None


def _sniff_format(path: Path) -> str:
    """'json' when the first non-blank character is `{` or `[`, else 'conll' (whose errors then name the line)."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            if line.strip():
                return "json" if line.lstrip()[0] in "{[" else "conll"
    return "conll"  # an empty file: read_conll reports it


def read_split_file(
    path: str | Path,
    fmt: str = "auto",
    *,
    key: str | None = None,
    token_column: int = 0,
    tag_column: int = -1,
    delimiter: str | None = None,
    label_names: Sequence[str] | None = None,
    comment_prefix: str | None = None,
    span_alignment: str = "strict",
    encoding: str = "utf-8",
) -> datasets.Dataset:
    """Read one split file as CoNLL or JSON(L), chosen by `fmt`, by the extension, or else by the content.

    `path` may be `pkg://package/file`. `key` (e.g. "data.validation_file") only appears in error
    messages. The CoNLL options are ignored for JSON and `label_names` for CoNLL, because a recipe
    always carries all of them.
    """
    label = f"{key}: " if key else ""
    resolved = _resolve(path, ".", key)
    sniffed = False
    if fmt == "auto":
        suffix = resolved.suffix.lower()
        if suffix in CONLL_EXTENSIONS:
            fmt = "conll"
        elif suffix in JSON_EXTENSIONS:
            fmt = "json"
        else:
            # Corpora in the wild are often named eng.train, train.dev, wnut17train: sniff the content.
            fmt, sniffed = _sniff_format(resolved), True
            logger.info("%s: extension %r is neither CoNLL (%s) nor JSON (%s); its content reads as %s",
                        resolved, suffix, " ".join(CONLL_EXTENSIONS), " ".join(JSON_EXTENSIONS), fmt)
    if fmt not in ("conll", "json"):
        raise DataError(f"{label}unknown format {fmt!r}; expected 'auto', 'conll' or 'json'", resolved)
    try:
        if fmt == "conll":
            return read_conll(resolved, token_column, tag_column, delimiter, comment_prefix, encoding)
        return read_json(resolved, label_names, span_alignment)
    except DataError as e:
        if not sniffed:
            raise
        raise DataError(f"{e} (the extension {resolved.suffix!r} is not a known one, so the file was read as {fmt} "
                        "from its content; set data.format if that is wrong)") from None


# --------------------------------------------------------------------------------------------
# Splitting and validation


def split_dataset(
    ds: datasets.Dataset, validation_ratio: float, test_ratio: float, seed: int
) -> datasets.DatasetDict:
    """Split one corpus into `train`, `validation` and `test`, deterministically for a `seed`.

    Whole documents are assigned to splits when any document_id is set (so document context
    never leaks across splits), else single sentences; with fewer documents than splits it falls
    back to sentences, with a warning. A split with ratio 0 is left out; the others get
    `max(1, round(ratio * units))` units. Each split keeps the original order and `sentence_id`s.
    """
    ratios = {"validation": validation_ratio, "test": test_ratio}
    for name, ratio in ratios.items():
        if not 0 <= ratio < 1:
            raise DataError(f"data.{name}_ratio must be in [0, 1), got {ratio}")
    if validation_ratio + test_ratio >= 1:
        raise DataError(f"data.validation_ratio + data.test_ratio must be < 1, "
                        f"got {validation_ratio} + {test_ratio}")
    wanted = {name: ratio for name, ratio in ratios.items() if ratio > 0}

    doc_ids = ds["document_id"]
    # Units: lists of row indices, in order of first appearance.
    units: dict[str, list[int]] = {}
    if any(doc_ids):
        for row, doc in enumerate(doc_ids):
            units.setdefault(doc, []).append(row)
        if len(units) <= len(wanted):
            logger.warning("only %d document(s) for %d splits: splitting by sentence instead",
                           len(units), len(wanted) + 1)
            units = {}
    if not units:
        units = {str(row): [row] for row in range(len(ds))}
    groups = list(units.values())

    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    rows: dict[str, list[int]] = {}
    start = 0
    for name, ratio in wanted.items():
        count = max(1, round(ratio * len(groups)))
        rows[name] = [r for g in order[start:start + count] for r in groups[g]]
        start += count
    rows["train"] = [r for g in order[start:] for r in groups[g]]
    if not rows["train"]:
        raise DataError(f"{len(groups)} sentence(s)/document(s) are too few to carve out "
                        f"{', '.join(wanted)} and keep a training split; give the splits as files")
    return datasets.DatasetDict(
        {name: ds.select(sorted(rows[name])) for name in ("train", *wanted)}
    )


def _read_configured_file(path: Path, data_cfg: Any, key: str) -> datasets.Dataset:
    """`read_split_file` with the reading options of the recipe's `data` section."""
    return read_split_file(path, data_cfg.format, key=key, token_column=data_cfg.token_column,
                           tag_column=data_cfg.tag_column, delimiter=data_cfg.delimiter,
                           label_names=data_cfg.label_names, comment_prefix=data_cfg.comment_prefix,
                           span_alignment=data_cfg.span_alignment, encoding=data_cfg.encoding)


def validate_splits(splits: datasets.DatasetDict) -> None:
    """Check that there is a `train` split, that no split is empty and all have the contract's columns."""
    if "train" not in splits:
        raise DataError(f"no 'train' split (splits: {list(splits)})")
    for name, ds in splits.items():
        missing = [column for column in FEATURES if column not in ds.column_names]
        if missing:
            raise DataError(f"split {name!r} lacks columns {missing}")
        if len(ds) == 0:
            raise DataError(f"split {name!r} is empty")


def _entity_type(tag: str) -> str | None:
    return schemes.parse_tag(tag)[1]


def check_labels(
    splits: datasets.DatasetDict,
    policy: str = "error",
    sources: Mapping[str, str | Path] | None = None,
) -> datasets.DatasetDict:
    """Handle entity types of non-train splits that never occur in `train`.

    `policy="error"` raises a DataError naming the split, the type and where it first appears
    (`sources` maps split names to their files, for `file:line`); `policy="O"` maps those tags to
    `O` and logs a warning with the counts. Returns the (possibly updated) splits.
    """
    if policy not in ("error", "O"):
        raise DataError(f"data.unseen_label_policy must be 'error' or 'O', got {policy!r}")
    sources = sources or {}
    seen = {_entity_type(tag) for tags in splits["train"]["ner_tags"] for tag in tags}
    out = dict(splits)
    for name, ds in splits.items():
        if name == "train":
            continue
        unseen: dict[str, int] = {}
        for row, tags in enumerate(ds["ner_tags"]):
            for position, tag in enumerate(tags):
                type_ = _entity_type(tag)
                if type_ in seen:
                    continue
                if policy == "error":
                    example = ds[row]
                    where = (f"{sources[name]}:{example['line']}" if name in sources and example["line"]
                             else f"sentence_id {example['sentence_id']}")
                    raise DataError(
                        f"split {name!r} has entity type {type_!r} (tag {tag!r}, word {position} "
                        f"{example['tokens'][position]!r} of the sentence at {where}) that never "
                        "occurs in train; fix the data, or set data.unseen_label_policy=O to map "
                        "such tags to O")
                unseen[type_] = unseen.get(type_, 0) + 1
        if unseen:
            logger.warning("split %r: mapping %d tag(s) of entity types unseen in train to O: %s "
                           "(data.unseen_label_policy=O)", name, sum(unseen.values()), unseen)
            drop = set(unseen)
            out[name] = ds.map(
                lambda batch: {"ner_tags": [["O" if _entity_type(t) in drop else t for t in tags]
                                            for tags in batch["ner_tags"]]},
                batched=True, desc="unseen types to O")
    return datasets.DatasetDict(out)


# --------------------------------------------------------------------------------------------
# Top level


def load_splits(data_cfg: Any, base_dir: str | Path = ".") -> tuple[datasets.DatasetDict, str]:
    """Load the recipe's data as `train`/`validation`/`test` splits in the training scheme.

    Sources: `data_cfg.dataset_name` (Hub) and/or files; a file given for a split replaces the Hub's.
    Relative paths resolve against `base_dir`; `pkg://package/file` names a file in an installed
    package. Any split neither on the Hub nor given as a file is carved out of train with its ratio
    (ratio 0: no such split). The input scheme (`tag_scheme`, or detected on train when "auto")
    is logged, every split is converted to `train_scheme`, and unseen labels are handled by
    `unseen_label_policy`. Returns `(splits, source_scheme)`.
    """
    splits: dict[str, datasets.Dataset] = {}
    sources: dict[str, str] = {}
    if data_cfg.dataset_name:
        splits.update(load_hub_dataset(data_cfg.dataset_name, data_cfg.dataset_config,
                                       data_cfg.dataset_revision, label_names=data_cfg.label_names))
    elif not data_cfg.train_file:
        raise DataError("no training data: set data.dataset_name or data.train_file")
    for split in ("train", "validation", "test"):
        file = getattr(data_cfg, f"{split}_file")
        if not file:
            continue
        key = f"data.{split}_file"
        path = _resolve(file, base_dir, key)
        splits[split] = _read_configured_file(path, data_cfg, key)
        sources[split] = str(path)
    if "train" not in splits:
        raise DataError(f"Hub dataset {data_cfg.dataset_name!r} has no train split "
                        f"(splits: {sorted(splits)}); set data.train_file")

    missing = {s: getattr(data_cfg, f"{s}_ratio") for s in ("validation", "test") if s not in splits}
    if any(missing.values()):
        carved = split_dataset(splits["train"], missing.get("validation", 0.0),
                               missing.get("test", 0.0), data_cfg.split_seed)
        splits.update(carved)
        for name in carved:
            if "train" in sources:
                sources[name] = sources["train"]
        logger.info("carved %s out of train (seed %d): %s", ", ".join(n for n in carved if n != "train"),
                    data_cfg.split_seed, {n: len(d) for n, d in carved.items()})

    label_map = getattr(data_cfg, "label_map", None)
    splits = {name: rename_entity_types(ds, label_map, name) for name, ds in splits.items()}
    try:
        target = schemes.normalize_scheme(data_cfg.train_scheme)
        source = (schemes.detect_scheme(splits["train"]["ner_tags"]) if data_cfg.tag_scheme == "auto"
                  else schemes.normalize_scheme(data_cfg.tag_scheme))
    except ValueError as err:
        raise DataError(f"data.tag_scheme/data.train_scheme: {err}") from None
    logger.info("input tag scheme: %s (%s); training scheme: %s", source,
                "detected on train" if data_cfg.tag_scheme == "auto" else "from data.tag_scheme", target)
    for name, ds in splits.items():
        splits[name] = _convert_split(ds, name, source, target, sources.get(name))

    splits = datasets.DatasetDict(splits)
    validate_splits(splits)
    return check_labels(splits, data_cfg.unseen_label_policy, sources), source


def _convert_split(ds: datasets.Dataset, name: str, source: str, target: str,
                   path: str | None) -> datasets.Dataset:
    """Convert one split's tags from `source` to `target`, naming the sentence on a scheme error.

    `convert_tags` also repairs invalid sequences (e.g. IOB2 `O I-PER` becomes `O B-PER`); the
    number of repaired sentences is logged, since it hints at a wrong `tag_scheme` or bad data.
    """
    repaired = [0]

    def convert(batch: dict[str, list]) -> dict[str, list]:
        out = []
        for tags, line, sentence_id in zip(batch["ner_tags"], batch["line"], batch["sentence_id"]):
            try:
                out.append(schemes.convert_tags(tags, source, target))
            except schemes.InvalidTagError as err:
                where = f"split {name!r} sentence_id {sentence_id}: "
                raise DataError(f"{where}{err}", path, line or None) from None
            if source == target and out[-1] != tags:
                repaired[0] += 1
        return {"ner_tags": out}

    converted = ds.map(convert, batched=True, desc=f"{source} -> {target}")
    if repaired[0]:
        logger.warning("split %r: %d sentence(s) were not valid %s and were repaired",
                       name, repaired[0], source)
    return converted


def load_split(data_cfg: Any, split: str, base_dir: str | Path = ".") -> tuple[datasets.Dataset, str]:
    """Load one split in the training scheme, for evaluating an already trained model.

    A file given for the split (`data.<split>_file`) is read on its own (its scheme detected on
    itself when `tag_scheme` is auto); otherwise the recipe's full data is loaded and the split
    taken from it, so a carved split is the same one training held out.
    """
    if split not in ("train", "validation", "test"):
        raise DataError(f"split must be train, validation or test, got {split!r}")
    file = getattr(data_cfg, f"{split}_file")
    if not file:
        splits, source = load_splits(data_cfg, base_dir)
        if split not in splits:
            raise DataError(f"no {split!r} split in the data (splits: {sorted(splits)})")
        return splits[split], source
    key = f"data.{split}_file"
    path = _resolve(file, base_dir, key)
    ds = _read_configured_file(path, data_cfg, key)
    if len(ds) == 0:
        raise DataError(f"{key}: no sentences", path)
    ds = rename_entity_types(ds, getattr(data_cfg, "label_map", None), split)
    try:
        target = schemes.normalize_scheme(data_cfg.train_scheme)
        source = (schemes.detect_scheme(ds["ner_tags"]) if data_cfg.tag_scheme == "auto"
                  else schemes.normalize_scheme(data_cfg.tag_scheme))
    except ValueError as err:
        raise DataError(f"data.tag_scheme/data.train_scheme: {err}") from None
    return _convert_split(ds, split, source, target, str(path)), source


# --------------------------------------------------------------------------------------------
# Renaming entity types (data.label_map): cross-dataset evaluation and training


def apply_label_map(sentences: Sequence[Sequence[str]], label_map: Mapping[str, str] | None,
                    ) -> tuple[list[list[str]], dict[str, int]]:
    """Rename the entity TYPES of tag sequences: ``{"PERSON": "PER"}`` turns B-PERSON into B-PER.

    A type mapped to ``"O"`` becomes O (all its words). Types not in the map are kept. Returns the new
    sequences and how many tags each map key renamed (0 for keys the data does not have). Renaming keeps
    a valid IOB2/BIOES sequence valid (every entity keeps its own B-/S-). Raises ValueError for a
    malformed map (the key "O", or a target that is not a usable type name).
    """
    if not label_map:
        return [list(tags) for tags in sentences], {}
    for source, target in label_map.items():
        if source == "O":
            raise ValueError("data.label_map: 'O' is not an entity type and cannot be renamed")
        if target != "O":
            try:
                schemes.parse_tag(f"B-{target}")
            except schemes.InvalidTagError as err:
                raise ValueError(f"data.label_map: {source!r} -> {target!r} is not a usable type: {err}") from None
    used = {source: 0 for source in label_map}
    out = []
    for tags in sentences:
        row = []
        for tag in tags:
            prefix, type_ = schemes.parse_tag(tag)
            if type_ is not None and type_ in label_map:
                used[type_] += 1
                target = label_map[type_]
                row.append("O" if target == "O" else f"{tag.partition('-')[0]}-{target}")
            else:
                row.append(tag)
        out.append(row)
    return out, used


def rename_entity_types(dataset: datasets.Dataset, label_map: Mapping[str, str] | None, split: str) -> datasets.Dataset:
    """The split with its entity types renamed by `data.label_map` (logged; unknown map keys warned)."""
    if not label_map:
        return dataset
    types = sorted({t.partition("-")[2] for tags in dataset["ner_tags"] for t in tags if t != "O"})
    try:
        tags, used = apply_label_map(dataset["ner_tags"], label_map)
    except ValueError as err:
        raise DataError(str(err)) from None
    unused = [k for k, n in used.items() if n == 0]
    if unused:
        logger.warning("data.label_map: %s not among the types of split %r (%s); keys are entity types "
                       "without the B-/I- prefix", unused, split, types)
    renamed = {k: f"{label_map[k]} ({n} tags)" for k, n in used.items() if n}
    if renamed:
        logger.info("data.label_map renamed %s", renamed)
    return dataset.remove_columns("ner_tags").add_column("ner_tags", tags)
