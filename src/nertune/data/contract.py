"""The data contract every reader returns (docs/ARCHITECTURE.md) and the tag checks they share.

- `tokens` (list[str]): the words, exactly as in the source;
- `ner_tags` (list[str]): one tag string per word, as in the source (scheme not converted yet);
- `document_id` (str): `doc0`, `doc1`, ... from `-DOCSTART-` lines, the `document_id` field of
  JSON records, or `""` when unknown (a file without `-DOCSTART-` is one unknown document);
- `sentence_id` (int): 0-based position of the sentence in its file (or Hub split); splitting keeps it,
  so predictions can always be written back in the original order;
- `line` (int): 1-based line where the sentence starts (CoNLL: its first word; JSONL: its record);
  0 when there is no line (JSON arrays, Hub datasets).

Optional, only when nested entities are requested (`data.nested=keep`, `data.nested_tag_columns`), so flat
data keeps exactly the columns above:
- `spans` (list of {"type", "start", "end"}): every entity of every level in WORD indices, end exclusive,
  sorted by start (outer before inner); `ner_tags` stays the flat, outermost level.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets

from nertune import schemes
from nertune.data.errors import DataError

FEATURES = datasets.Features(
    {
        "tokens": datasets.List(datasets.Value("string")),
        "ner_tags": datasets.List(datasets.Value("string")),
        "document_id": datasets.Value("string"),
        "sentence_id": datasets.Value("int64"),
        "line": datasets.Value("int64"),
    }
)

SPANS = "spans"
SPANS_FEATURE = datasets.List(
    {"type": datasets.Value("string"), "start": datasets.Value("int64"), "end": datasets.Value("int64")}
)

TAG_FIELDS = ("ner_tags", "tags", "labels")  # where JSON records and Hub datasets keep their tags


def empty_columns() -> dict[str, list]:
    return {name: [] for name in FEATURES}


def to_dataset(columns: dict[str, list]) -> datasets.Dataset:
    # from_dict rather than from_generator: the generator cache is keyed on the function and its
    # arguments (the path), not the file's content, so an edited file could come back stale.
    features = FEATURES if SPANS not in columns else datasets.Features({**FEATURES, SPANS: SPANS_FEATURE})
    return datasets.Dataset.from_dict(columns, features=features)


def spans_of_tags(tags: Sequence[str]) -> list[dict]:
    """One level of tags (any scheme: reading is the same for all) as `spans` column entries."""
    # BIOES allows every prefix letter; the decoding does not depend on the scheme.
    return [{"type": t, "start": s, "end": e} for t, s, e in schemes.tags_to_spans(tags, "BIOES")]


class TagChecker:
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


def tag_strings(
    tags: Sequence[Any],
    label_names: Sequence[str] | None,
    where: str,
    path: str | Path | None,
    line: int | None,
    check_tag: TagChecker,
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
        raise DataError(f"{where}tags must be all strings or all integers, got {kind}: {list(tags)!r}", path, line)
    if label_names is None:
        raise DataError(
            f"{where}integer tags {list(tags)[:10]!r} need label names: set data.label_names to the "
            "list of tag strings, in id order (e.g. [O, B-PER, I-PER, ...])",
            path,
            line,
        )
    out = []
    for tag in tags:
        if not 0 <= tag < len(label_names):
            raise DataError(f"{where}tag id {tag} is out of range for {len(label_names)} label names", path, line)
        out.append(label_names[tag])
        check_tag(out[-1], path, line, where)
    return out
