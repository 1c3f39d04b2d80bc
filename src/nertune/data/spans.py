"""Character spans into words and tags, for every reader of span annotations (CLUENER2020, span JSON, Label
Studio / Doccano / Prodigy exports): how a span that cuts a word is aligned (`data.span_alignment`) and what
happens to nested or overlapping spans (`data.nested`).

Published corpora cut words: CLUENER2020 tags `CPL` inside `CPL2011` (a run of Latin letters or digits is one
word to `split_words`), and nest entities (a company inside a book title). `split` (the default) splits such a
word at the span boundary, so labels and character offsets stay exactly as annotated.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from nertune.data.words import split_words

logger = logging.getLogger(__name__)

ALIGNMENTS = ("split", "strict", "expand")
NESTED_POLICIES = ("outermost", "error", "keep")
_EXAMPLES = 5  # dropped spans named (as file:line) in the warning

CharSpan = tuple[int, int, str]  # (start, end exclusive, type) in characters


@dataclass
class TaggedText:
    """A text as words, their IOB2 tags (the outermost level) and its spans in word indices."""

    words: list[str]
    tags: list[str]
    # {"type", "start", "end"} in word indices, end exclusive: the tagged level, plus every inner one with nested=keep.
    spans: list[dict]
    split_words: int = 0  # words split at a span boundary (span_alignment=split)
    inner: list[tuple[CharSpan, CharSpan]] = field(default_factory=list)  # (span not in `tags`, the span it meets)


@dataclass
class SpanStats:
    """What aligning the spans of one file changed: logged as its load summary and readable by training
    (`as_metrics`, for metrics.json)."""

    records: int = 0
    split_words: int = 0
    nested_spans: int = 0  # inner or crossing spans that are not in ner_tags
    kept_nested: bool = False  # nested=keep: those spans are in the `spans` column, else they are dropped
    examples: list[str] = field(default_factory=list)

    @property
    def dropped_spans(self) -> int:
        return 0 if self.kept_nested else self.nested_spans

    def add(self, tagged: TaggedText, text: str, where: str) -> None:
        self.records += 1
        self.split_words += tagged.split_words
        self.nested_spans += len(tagged.inner)
        for (start, end, type_), (o_start, o_end, o_type) in tagged.inner[: _EXAMPLES - len(self.examples)]:
            relation = "inside" if o_start <= start and end <= o_end else "crossing"
            self.examples.append(
                f"{where} [{start}, {end}) {type_!r} {text[start:end]!r} {relation} "
                f"[{o_start}, {o_end}) {o_type!r} {text[o_start:o_end]!r}"
            )

    def merge(self, other: SpanStats) -> None:
        """Add another file's counts (a split read from several files, or carved splits sharing one)."""
        self.records += other.records
        self.split_words += other.split_words
        self.nested_spans += other.nested_spans
        self.kept_nested = self.kept_nested or other.kept_nested
        self.examples += other.examples[: _EXAMPLES - len(self.examples)]

    def as_metrics(self) -> dict[str, int]:
        return {"split_words": self.split_words, "nested_spans": self.nested_spans, "dropped_spans": self.dropped_spans}

    def log(self, path: str | Path) -> None:
        """The load summary line, and one warning naming the first dropped spans."""
        logger.info(
            "%s: %d records tagged from character spans; %d words split at a span boundary; %d nested or "
            "overlapping spans %s",
            path,
            self.records,
            self.split_words,
            self.nested_spans,
            "kept in the spans column" if self.kept_nested else "dropped",
        )
        if self.dropped_spans:
            logger.warning(
                "%s: dropped %d nested or overlapping spans (data.nested=outermost keeps the outermost, or longest, "
                "span; data.nested=keep stores every level in a `spans` column, error refuses them): %s%s",
                path,
                self.dropped_spans,
                "; ".join(self.examples),
                "; ..." if self.dropped_spans > len(self.examples) else "",
            )


def _clean(text: str, spans: Sequence[CharSpan]) -> list[CharSpan]:
    """Checked spans without the whitespace at their edges (annotation tools often include it), sorted, and
    duplicates (same offsets and type: an export listing an entity twice) counted once."""
    out = set()
    for start, end, type_ in spans:
        where = f"entity [{start}, {end}) {type_!r}"
        if not 0 <= start < end <= len(text):
            raise ValueError(f"{where} is not inside the text ({len(text)} characters)")
        if not type_ or any(c.isspace() for c in type_):
            raise ValueError(f"{where}: an entity type must be a non-empty word without spaces")
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            raise ValueError(f"{where} covers no word: {text[start:end]!r}")
        out.add((start, end, type_))
    return sorted(out)


def _outermost(spans: Sequence[CharSpan]) -> tuple[list[CharSpan], list[tuple[CharSpan, CharSpan]]]:
    """The spans that overlap no longer one (longest first, then leftmost), and each other span with the
    kept span it meets: an inner span of a nested pair, or the shorter of two crossing ones."""
    kept: list[CharSpan] = []  # disjoint, sorted by start
    inner = []
    for span in sorted(spans, key=lambda s: (s[0] - s[1], s[0], s[2])):
        i = bisect.bisect_left(kept, span)
        meets = [k for k in kept[max(i - 1, 0) : i + 1] if k[0] < span[1] and span[0] < k[1]]
        if meets:
            inner.append((span, meets[0]))
        else:
            kept.insert(i, span)
    return kept, sorted(inner)


def _split_at(words: list[tuple[str, int, int]], cuts: Sequence[int]) -> tuple[list[tuple[str, int, int]], int]:
    """`words` with every word that a cut offset falls inside split there; and how many words were split."""
    out, n_split = [], 0
    for word, start, end in words:
        inside = cuts[bisect.bisect_right(cuts, start) : bisect.bisect_left(cuts, end)]
        if not inside:
            out.append((word, start, end))
            continue
        n_split += 1
        out.extend((word[a - start : b - start], a, b) for a, b in pairwise([start, *inside, end]))
    return out, n_split


def _word_range(words: list[tuple[str, int, int]], starts: list[int], span: CharSpan, text: str, strict: bool):
    """`(first, last + 1)`: the words a span covers (every visible character is in exactly one word)."""
    start, end, type_ = span
    first = max(bisect.bisect_right(starts, start) - 1, 0)
    covered = [i for i in range(first, bisect.bisect_left(starts, end)) if words[i][2] > start]
    where = f"entity [{start}, {end}) {type_!r}"
    if not covered:
        raise ValueError(f"{where} covers no word: {text[start:end]!r}")
    first, last = covered[0], covered[-1]
    if strict and (words[first][1] != start or words[last][2] != end):
        cut = words[first] if words[first][1] != start else words[last]
        raise ValueError(
            f"{where} {text[start:end]!r} cuts the word {cut[0]!r} at [{cut[1]}, {cut[2]}); fix the span, or "
            "set data.span_alignment=split to split the word there (expand takes whole words)"
        )
    return first, last + 1


def _overlap_error(span: CharSpan, other: CharSpan, text: str) -> ValueError:
    (start, end, type_), (o_start, o_end, o_type) = span, other
    return ValueError(
        f"entity [{start}, {end}) {type_!r} {text[start:end]!r} overlaps another entity [{o_start}, {o_end}) "
        f"{o_type!r} {text[o_start:o_end]!r} (nested or overlapping entities; data.nested=outermost keeps the "
        "outermost span as IOB tags, keep also stores the inner ones in a `spans` column)"
    )


def tag_words_from_spans(
    text: str, spans: Sequence[CharSpan], alignment: str = "split", nested: str = "outermost"
) -> TaggedText:
    """The words of `text` (`split_words`) and their IOB2 tags from character spans `(start, end, type)`.

    `alignment` (data.span_alignment), for a span that starts or ends inside a word: `split` splits the word
    there (offsets and labels exact), `expand` takes the whole word, `strict` refuses. `nested` (data.nested),
    for spans that overlap: `outermost` tags the longest of them and reports the others (`TaggedText.inner`),
    `keep` does so too and also returns every level in `TaggedText.spans`, `error` refuses.
    Raises ValueError naming the span when it is outside the text, empty, cuts a word (`strict`) or overlaps
    another (`error`).
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"data.span_alignment must be one of {list(ALIGNMENTS)}, got {alignment!r}")
    if nested not in NESTED_POLICIES:
        raise ValueError(f"data.nested must be one of {list(NESTED_POLICIES)}, got {nested!r}")
    clean = _clean(text, spans)
    flat, inner = _outermost(clean)
    if inner and nested == "error":
        raise _overlap_error(*inner[0], text)
    # Only the spans that are kept somewhere split words: a dropped inner span changes nothing.
    placed = clean if nested == "keep" else flat
    words, n_split = split_words(text), 0
    if alignment == "split":
        words, n_split = _split_at(words, sorted({offset for start, end, _ in placed for offset in (start, end)}))
    starts = [start for _, start, _ in words]
    ranges = {span: _word_range(words, starts, span, text, alignment == "strict") for span in placed}
    # Expanded spans may now share a word: the longer one keeps it, as for spans that overlap in characters.
    tags = ["O"] * len(words)
    owner: list[CharSpan | None] = [None] * len(words)
    for span in sorted(flat, key=lambda s: (ranges[s][0] - ranges[s][1], s[0] - s[1], s[0])):
        first, last = ranges[span]
        taken = next((owner[i] for i in range(first, last) if owner[i] is not None), None)
        if taken is not None:
            if nested == "error":
                raise _overlap_error(span, taken, text)
            inner.append((span, taken))
            continue
        owner[first:last] = [span] * (last - first)
        tags[first:last] = [f"B-{span[2]}"] + [f"I-{span[2]}"] * (last - first - 1)
    levels = sorted({(*ranges[span], span[2]) for span in placed}, key=lambda r: (r[0], -r[1], r[2]))
    return TaggedText(
        words=[word for word, _, _ in words],
        tags=tags,
        spans=[{"type": type_, "start": first, "end": last} for first, last, type_ in levels],
        split_words=n_split,
        inner=sorted(inner),
    )
