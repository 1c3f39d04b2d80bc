"""The input of `nertune predict`: `InputRecord` (a text or pre-split tokens), the CoNLL layout, plain text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nertune.data.lines import read_lines


@dataclass
class InputRecord:
    """One unit of input: a text or pre-split tokens, with what writing the output needs."""

    text: str | None = None
    tokens: list[str] | None = None
    id: Any = None
    has_id: bool = False
    line: int = 0  # 1-based line of the record (CoNLL: of its first token)
    token_lines: list[int] | None = None  # CoNLL: index in the file's lines of each token
    document_id: str = ""  # CoNLL: from -DOCSTART- lines; JSONL: the `document_id` field; "" for none


@dataclass
class ConllLayout:
    """How to read a CoNLL input: defaults from the model's training recipe (`data.token_column`,
    `data.delimiter`, `data.comment_prefix`), so a model trained on GermEval reads GermEval."""

    token_column: int = 0
    delimiter: str | None = None
    comment_prefix: str | None = None

    def is_comment(self, line: str) -> bool:
        return bool(self.comment_prefix) and line.startswith(self.comment_prefix)


def iter_input_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[str]:
    """Every line of a predict input file, one at a time (CoNLL output is written back from them)."""
    for _, line in read_lines(path, encoding, setting="--encoding"):
        yield line


def iter_text_records(path: str | Path, documents: bool = False, encoding: str = "utf-8") -> Iterator[InputRecord]:
    """One text per line, streamed; a blank line is an empty text (it keeps its position). With `documents`,
    the lines are sentences and blank lines separate documents (whose sentences are each other's context)."""
    n_documents, previous_blank = 0, True
    for i, line in enumerate(iter_input_lines(path, encoding), start=1):
        blank = not line.strip()
        if documents and not blank and previous_blank:
            n_documents += 1
        yield InputRecord(text=line, line=i, document_id=f"doc{n_documents}" if documents and not blank else "")
        previous_blank = blank
