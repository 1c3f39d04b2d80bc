"""CoNLL files: one parser of CoNLL lines, read for training (`read_conll`) and as predict input
(`iter_conll_records`: tokens only, labelled or not, each token keeping its line)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import regex

from nertune.data.contract import SPANS, TagChecker, empty_columns, spans_of_tags, to_dataset
from nertune.data.errors import DataError
from nertune.data.lines import ASCII_WHITESPACE, is_blank, read_lines, split_columns
from nertune.data.records import ConllLayout, InputRecord

logger = logging.getLogger(__name__)

DOCSTART = "-DOCSTART-"
TOKEN_SUFFIXES = ("none", "digit")  # data.strip_token_suffix
# Weibo NER's weiboNER_2nd_conll writes each character with its position in its word: `中0`, `国1`.
_HAN_DIGIT = regex.compile(r"\p{Han}[0-9]$")


@dataclass
class ConllRow:
    """One word line: its 1-based number, its text without trailing whitespace, and its columns."""

    line: int
    text: str
    fields: list[str]


@dataclass
class ConllSentence:
    document_id: str  # "doc0", "doc1", ... after -DOCSTART- lines; "" before the first one
    rows: list[ConllRow] = field(default_factory=list)


def parse_conll(
    path: str | Path, lines: Iterable[tuple[int, str]], delimiter: str | None = None, comment_prefix: str | None = None
) -> Iterator[ConllSentence]:
    """The sentences of CoNLL `lines` (`(line number, text)` pairs), in order.

    Blank or whitespace-only lines end a sentence; trailing whitespace is dropped. `-DOCSTART-` lines
    start documents `doc0`, `doc1`, ... (and end a sentence). Lines starting with `comment_prefix` are
    skipped (counted in the log); they do not end a sentence. Columns are split by `split_columns`.
    `path` is only for the log.
    """
    document_id, n_documents, n_comments = "", 0, 0
    sentence = ConllSentence(document_id)
    for line_no, text in lines:
        text = text.rstrip(ASCII_WHITESPACE)
        if is_blank(text):
            if sentence.rows:
                yield sentence
            sentence = ConllSentence(document_id)
            continue
        if comment_prefix and text.startswith(comment_prefix):
            n_comments += 1
            continue
        fields = split_columns(text, delimiter)
        if fields[0] == DOCSTART:
            if sentence.rows:
                yield sentence
            document_id, n_documents = f"doc{n_documents}", n_documents + 1
            sentence = ConllSentence(document_id)
            continue
        sentence.rows.append(ConllRow(line_no, text, fields))
    if sentence.rows:
        yield sentence
    if n_comments:
        logger.info("%s: skipped %d comment lines (starting with %r)", path, n_comments, comment_prefix)


def _columns_needed(index: int) -> int:
    return index + 1 if index >= 0 else -index


def read_conll(
    path: str | Path,
    token_column: int = 0,
    tag_column: int = -1,
    delimiter: str | None = None,
    comment_prefix: str | None = None,
    encoding: str = "utf-8",
    nested_tag_columns: Sequence[int] | None = None,
    strip_token_suffix: str = "none",
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
    `nested_tag_columns` (GermEval's inner column: `[3]`) are further levels of tags: with them every level's
    entities are in a `spans` column (`ner_tags` stays `tag_column`). `strip_token_suffix="digit"` drops one
    trailing digit from every token of two or more characters (Weibo NER's `中0`); a file whose tokens all look
    like that is warned about.
    """
    # Parsed by hand rather than with datasets' "conll" builder, which silently pads a missing
    # tag column with '' and keeps the BOM inside the first token.
    if token_column == tag_column:
        raise DataError(f"token_column and tag_column are both {token_column}")
    if strip_token_suffix not in TOKEN_SUFFIXES:
        raise DataError(f"data.strip_token_suffix must be one of {list(TOKEN_SUFFIXES)}, got {strip_token_suffix!r}")
    levels = list(nested_tag_columns or [])
    if {token_column, tag_column} & set(levels):
        raise DataError(f"data.nested_tag_columns {levels} holds the token or the tag column")
    needed = max(2, _columns_needed(token_column), _columns_needed(tag_column), *map(_columns_needed, levels))
    columns = empty_columns()
    if levels:
        columns[SPANS] = []
    check_tag = TagChecker()
    suffixed = _SuffixCheck()
    for sentence in parse_conll(path, read_lines(path, encoding), delimiter, comment_prefix):
        tokens, tags = [], []
        for row in sentence.rows:
            n = len(row.fields)
            if n < needed or token_column % n == tag_column % n:
                hint = (
                    " (a comment line? set data.comment_prefix to skip such lines)" if row.text.startswith("#") else ""
                )
                raise DataError(
                    f"expected at least {needed} columns (token column {token_column}, tag column "
                    f"{tag_column}), found {n}: {row.text!r}{hint}",
                    path,
                    row.line,
                )
            token, tag = row.fields[token_column], row.fields[tag_column]
            if not token:
                raise DataError(f"empty token in column {token_column}: {row.text!r}", path, row.line)
            for checked in (tag, *(row.fields[column] for column in levels)):
                _check_row_tag(check_tag, checked, row, path, comment_prefix)
            if strip_token_suffix == "digit" and len(token) > 1 and token[-1] in "0123456789":
                token = token[:-1]
            suffixed(token, row.line)
            tokens.append(token)
            tags.append(tag)
        if levels:
            all_levels = [tags] + [[row.fields[column] for row in sentence.rows] for column in levels]
            found = {(s["start"], s["end"], s["type"]) for level in all_levels for s in spans_of_tags(level)}
            columns[SPANS].append([{"type": t, "start": a, "end": b} for a, b, t in sorted(found, key=_outer_first)])
        columns["tokens"].append(tokens)
        columns["ner_tags"].append(tags)
        columns["document_id"].append(sentence.document_id)
        columns["sentence_id"].append(len(columns["sentence_id"]))
        columns["line"].append(sentence.rows[0].line)
    if not columns["tokens"]:
        raise DataError("no sentences found (empty file, or only blank, comment and -DOCSTART- lines)", path)
    suffixed.warn(path)
    return to_dataset(columns)


def _outer_first(span: tuple[int, int, str]) -> tuple[int, int, str]:
    return span[0], -span[1], span[2]


def _check_row_tag(
    check_tag: TagChecker, tag: str, row: ConllRow, path: str | Path, comment_prefix: str | None
) -> None:
    """`check_tag`, pointing at data.comment_prefix when the line starts with '#' (GermEval's `#\t<url>` lines)."""
    try:
        check_tag(tag, path, row.line)
    except DataError as err:
        if not row.text.startswith("#") or comment_prefix:
            raise
        hinted = DataError(f"{err}; the line starts with '#': a comment line? data.comment_prefix=# skips such lines")
        hinted.path, hinted.line = err.path, err.line
        raise hinted from None


class _SuffixCheck:
    """Whether every token ends in a digit, some right after a Han character: Weibo NER's segmentation-position
    suffix (`中0`), which would make every character an unknown word."""

    def __init__(self) -> None:
        self.all_digits, self.example = True, None

    def __call__(self, token: str, line: int) -> None:
        if self.all_digits and not (len(token) > 1 and token[-1] in "0123456789"):
            self.all_digits = False
        if self.example is None and _HAN_DIGIT.search(token):
            self.example = (token, line)

    def warn(self, path: str | Path) -> None:
        if self.all_digits and self.example:
            logger.warning(
                "%s: every token ends in a digit, after a Han character too (%r at line %d): this looks like a "
                "segmentation-position suffix (Weibo NER's weiboNER_2nd_conll writes 中0); "
                "data.strip_token_suffix=digit strips it, and data.label_map renames entity types "
                "(e.g. PER.NAM:PER,PER.NOM:PER)",
                path,
                *self.example,
            )


def iter_conll_records(
    path: str | Path, lines: Iterable[str], layout: ConllLayout | None = None, warn: bool = True
) -> Iterator[InputRecord]:
    """Sentences of a CoNLL file's `lines`, labelled or not, streamed as predict input: the token is in
    `layout.token_column` (the first by default); each record keeps the 0-based index of its tokens' lines.
    `warn`: log lines that look like comments read as words (once the lines are exhausted)."""
    layout = layout or ConllLayout()
    # "#" in the first column while the words are elsewhere: GermEval-style comments? (count, first line)
    n_hash_lines, first_hash_line = 0, 0
    for sentence in parse_conll(path, enumerate(lines, start=1), layout.delimiter, layout.comment_prefix):
        record = InputRecord(tokens=[], token_lines=[], line=sentence.rows[0].line, document_id=sentence.document_id)
        for row in sentence.rows:
            try:
                token = row.fields[layout.token_column]
            except IndexError:
                hint = "; a comment line? --comment-prefix skips them" if row.text.startswith("#") else ""
                raise DataError(
                    f"no token column {layout.token_column} in {row.text!r} "
                    f"({len(row.fields)} columns; --token-column sets it{hint})",
                    path,
                    row.line,
                ) from None
            if not token:
                raise DataError(f"empty token in column {layout.token_column}: {row.text!r}", path, row.line)
            if row.fields[0] == "#" and layout.token_column != 0:
                n_hash_lines, first_hash_line = n_hash_lines + 1, first_hash_line or row.line
            record.tokens.append(token)
            record.token_lines.append(row.line - 1)
        yield record
    if n_hash_lines and warn:
        logger.warning(
            "%s: %d lines start with a '#' column (first: line %d) and are read as words; if they are "
            "comments, --comment-prefix '#' skips them",
            path,
            n_hash_lines,
            first_hash_line,
        )
