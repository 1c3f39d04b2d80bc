"""Which format a file is in: ONE extension table and ONE content sniffer, for training files
(`read_split_file`) and `nertune predict` input alike.

The rule: `.conll .tsv .bio .iob .iob2 .bioes .bmes` are CoNLL and `.json .jsonl` JSON(L) by their
extension (a `.json` file may hold one object a line, as CLUENER2020's train.json does).
A `.txt` file (CoNLL corpora and plain text both use it) or any other name (`eng.train`, `wnut17.dev`)
is read by its content: JSON(L) when it starts with `{` or `[`; CoNLL when it starts with -DOCSTART- or
its first non-blank lines all end in a tag column (`O`, `B-PER` ...); else plain text, which only
predict reads.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from nertune import schemes
from nertune.assets import resolve_path
from nertune.data.conll import DOCSTART, read_conll
from nertune.data.errors import DataError
from nertune.data.json_records import read_json
from nertune.data.lines import check_encoding, is_blank, split_columns
from nertune.data.spans import SpanStats

logger = logging.getLogger(__name__)

# .bmes: the character-per-line Chinese corpora (Resume, MSRA, Weibo: train.char.bmes).
CONLL_EXTENSIONS = (".conll", ".tsv", ".bio", ".iob", ".iob2", ".bioes", ".bmes")
JSON_EXTENSIONS = (".json", ".jsonl")
_SNIFF_LINES = 20  # non-blank lines whose last column must be a tag
_SNIFF_SCAN = 200  # lines read at most to find them


@dataclass(frozen=True)
class FileFormat:
    """How a file is read: `name` ('conll', 'json' or 'text') and why (`reason`, for logs and errors)."""

    name: str
    reason: str
    sniffed: bool = False


def format_from_extension(path: str | Path) -> str | None:
    """'conll' or 'json' when the extension says so; None for `.txt` and other extensions."""
    suffix = Path(path).suffix.lower()
    if suffix in CONLL_EXTENSIONS:
        return "conll"
    if suffix in JSON_EXTENSIONS:
        return "json"
    return None


def _is_tag(text: str) -> bool:
    try:
        schemes.parse_tag(text)
    except schemes.InvalidTagError:
        return False
    return True


def sniff_format(
    path: str | Path, encoding: str = "utf-8", delimiter: str | None = None, comment_prefix: str | None = None
) -> tuple[str, str]:
    """`(format, evidence)` of a file from its first lines, by the rule in the module docstring."""
    encoding = check_encoding(encoding)
    # Decoding errors are replaced here: the reader chosen afterwards names their line.
    with open(path, encoding="utf-8-sig" if encoding == "utf-8" else encoding, errors="replace") as handle:
        lines = [(no, line.rstrip("\r\n")) for no, line in enumerate(itertools.islice(handle, _SNIFF_SCAN), start=1)]
    lines = [
        (no, text)
        for no, text in lines
        if not is_blank(text) and not (comment_prefix and text.startswith(comment_prefix))
    ][:_SNIFF_LINES]
    if not lines:
        return "conll", "it has no data lines"  # the CoNLL reader reports an empty file
    first_no, first = lines[0]
    if first.lstrip()[0] in "{[":
        return "json", f"line {first_no} starts with {first.lstrip()[0]!r}"
    if split_columns(first, delimiter)[0] == DOCSTART:
        return "conll", f"line {first_no} is {DOCSTART}"
    for no, text in lines:
        fields = split_columns(text, delimiter)
        if len(fields) < 2 or not _is_tag(fields[-1]):
            hint = "; a comment line? data.comment_prefix=# skips such lines" if text.startswith("#") else ""
            return "text", f"line {no} {text[:60]!r} does not end in a tag column{hint}"
    return "conll", f"its first {len(lines)} non-blank lines end in a tag column"


def detect_format(
    path: str | Path,
    given: str | None = None,
    *,
    setting: str,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    comment_prefix: str | None = None,
) -> FileFormat:
    """The format `given` (by `setting`, e.g. data.format or --format), else by the extension, else by the
    content; logged."""
    path = Path(path)
    if given and given != "auto":
        found = FileFormat(given, f"set by {setting}")
    elif (by_extension := format_from_extension(path)) is not None:
        found = FileFormat(by_extension, f"by its extension {path.suffix!r}")
    else:
        name, evidence = sniff_format(path, encoding, delimiter, comment_prefix)
        found = FileFormat(
            name,
            f"from its content: {evidence} (the extension {path.suffix!r} does not tell; {setting} sets the format)",
            sniffed=True,
        )
    logger.info("%s: read as %s %s", path, found.name, found.reason)
    return found


_LOOKS_LIKE = {"json": "JSON lines (CLUENER/span JSON)", "conll": "CoNLL (a token and a tag per line)"}


def explain(err: DataError, found: FileFormat, content: tuple[str, str] | None = None) -> DataError:
    """`err` saying how the file was read, when its format was only sniffed (it may be the wrong one), or what
    the file looks like when `content` (`sniff_format`'s answer) contradicts the format it was read as."""
    if found.sniffed:
        explained = DataError(f"{err} (read as {found.name} {found.reason})")
    elif content is not None and content[0] != found.name and content[0] in _LOOKS_LIKE:
        name = Path(err.path).name if err.path else "the file"
        explained = DataError(
            f"{err}; {name} looks like {_LOOKS_LIKE[content[0]]}: {content[1]}, but it was read as "
            f"{found.name} {found.reason}; set data.format={content[0]}"
        )
    else:
        return err
    explained.path, explained.line = err.path, err.line
    return explained


def resolve_data_path(path: str | Path, base_dir: str | Path, key: str | None) -> Path:
    """`assets.resolve_path` (plain or `pkg://` path), with the recipe key in the error."""
    try:
        return resolve_path(path, base_dir)
    except FileNotFoundError as err:
        raise DataError(f"{key + ': ' if key else ''}file not found: {err}") from None


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
    span_alignment: str = "split",
    encoding: str = "utf-8",
    tokens_field: str | None = None,
    tags_field: str | None = None,
    nested: str = "outermost",
    nested_tag_columns: Sequence[int] | None = None,
    strip_token_suffix: str = "none",
    stats: SpanStats | None = None,
) -> datasets.Dataset:
    """Read one split file as CoNLL or JSON(L), chosen by `fmt`, by the extension, or else by the content.

        `path` may be `pkg://package/file`. `key` (e.g. "data.validation_file") only appears in error
        messages. `tokens_field`/`tags_field` name the JSON fields of the words and tags (`data.tokens_field`,
    `data.tags_field`). The CoNLL options are ignored for JSON and `label_names` for CoNLL, because a recipe
        always carries all of them. A file whose content reads as plain text is an error: training needs tags.
        `span_alignment`, `nested` and `stats`: see `read_json`; `nested_tag_columns`, `strip_token_suffix`: see
        `read_conll`. An error in a file whose content looks like the other format says so.
    """
    label = f"{key}: " if key else ""
    resolved = resolve_data_path(path, ".", key)
    if fmt not in ("auto", "conll", "json"):
        raise DataError(f"{label}unknown format {fmt!r}; expected 'auto', 'conll' or 'json'", resolved)
    found = detect_format(
        resolved, fmt, setting="data.format", encoding=encoding, delimiter=delimiter, comment_prefix=comment_prefix
    )
    if found.name == "text":
        raise DataError(
            f"{label}read as plain text {found.reason}; training needs CoNLL (a token and a tag "
            "per line) or JSON(L) records with tags; data.format=conll reads it as CoNLL anyway",
            resolved,
        )
    try:
        if found.name == "conll":
            return read_conll(
                resolved,
                token_column,
                tag_column,
                delimiter,
                comment_prefix,
                encoding,
                nested_tag_columns=nested_tag_columns,
                strip_token_suffix=strip_token_suffix,
            )
        return read_json(
            resolved,
            label_names,
            span_alignment,
            tokens_field=tokens_field,
            tags_field=tags_field,
            nested=nested,
            stats=stats,
        )
    except DataError as err:
        content = None if found.sniffed else sniff_format(resolved, encoding, delimiter, comment_prefix)
        raise explain(err, found, content) from None
