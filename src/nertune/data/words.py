"""Raw text into words with character offsets: how `nertune predict`/`serve` read text, and how span-annotated
corpora (Doccano, spaCy, Prodigy JSONL: text + character spans) become words and tags."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import regex

# Characters that are words on their own, as BERT's BasicTokenizer splits Chinese (`_tokenize_chinese_chars`):
# CJK ideographs (every extension block, compatibility ideographs, radicals; the Han script) and Japanese kana
# with the prolonged sound mark. Not Hangul: Korean is written with spaces between words.
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\u30fc\uff70"
# A letter, digit or combining mark that is not CJK: runs of these make words (`DOTA2` inside Chinese text).
_W = rf"[^\W{_CJK}]"
# Where a URL written without spaces in Chinese or Japanese text ends: CJK, CJK and fullwidth punctuation.
_URL_STOP = rf"{_CJK}\u3000-\u303f\uff01-\uff65"

# Tried in order at each position. `regex` (a transformers dependency) rather than `re`: its \w also
# matches combining marks (Devanagari vowel signs, decomposed accents) and \X keeps an emoji sequence
# (ZWJ family, skin tone, flag) together, or a kana with its voiced sound mark.
_WORD = regex.compile(
    rf"""
      (?=[{_CJK}])\X                                           # a CJK ideograph or kana, with its marks
    # a URL, without the punctuation that ends the sentence
    | (?:https?://|www\.)[^\s{_URL_STOP}]+?(?=[.,;:!?)\]}}'"’”…]*(?:[\s{_URL_STOP}]|$))
    | {_W}+(?:[.+-]{_W}+)*@{_W}+(?:[.-]{_W}+)*\.{_W}+         # an e-mail address
    | [@\#]{_W}+                                              # a Twitter @mention or #hashtag, as in WNUT
    | ['’][sS](?!{_W})                                        # the clitic 's on its own, as CoNLL/WNUT write it
    | {_W}+(?:(?:[-.\u00ad\u200c\u200d]|(?<=\d),(?=\d)|['’](?![sS](?!{_W}))){_W}+)*  # e-mail, U.S, 1,000, don't
    | (\p{{P}})\1+                                             # a run of one punctuation mark: ..., !!!, --
    | (?=[^\w\s\p{{Cf}}])\X                                    # any other visible symbol, one grapheme each
    """,
    regex.VERBOSE,
)


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Split text into `(word, start, end)` with `text[start:end] == word`.

    Whitespace (tabs, newlines, Unicode spaces) and invisible format characters such as a zero-width
    space separate words and belong to none (a soft hyphen, ZWJ or ZWNJ inside a word stays in it);
    every other character is in exactly one word.
    Punctuation is split from words, except inside URLs, e-mail addresses, @mentions, #hashtags and
    words such as `e-mail`, `U.S`, `1,000`, `don't`; a trailing `'s` is a word of its own and a run of
    one punctuation mark (`...`, `!!!`, `……`) is one word. Fullwidth and CJK punctuation (`，。、《》`)
    is punctuation like any other.

    Languages written without spaces:

    * Chinese and Japanese: every CJK ideograph (all extension blocks and compatibility ideographs) and
      every kana is a word of its own, wherever it stands (also next to a URL or after `@`/`#`), as
      BERT's tokenizer splits Chinese and as character-level corpora (MSRA, Weibo, Resume, CLUENER) are
      annotated; a run of Latin letters or digits among them stays one word (`DOTA2`, `600000`).
    * Korean is written with spaces: Hangul words are split at spaces like any other language.
    * Thai, Lao, Khmer, Myanmar: no spaces between words and no per-character convention, so a run of
      letters between spaces or punctuation stays one word, and the tokenizer's sub-tokens of that run
      are read at the first one (one tag for the whole run). Split such text into words beforehand with
      a word segmenter for the language and predict on the words (CoNLL input, `predict_words`).
    """
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def tag_words_from_spans(
    text: str, spans: Sequence[tuple[int, int, str]], expand: bool = False
) -> tuple[list[str], list[str]]:
    """The words of `text` (`split_words`) and their IOB2 tags from character spans `(start, end, type)`.

    Whitespace at the edges of a span is ignored (annotation tools often include it). A span must start
    and end at word boundaries; with `expand` a span that cuts a word takes the whole word instead.
    Raises ValueError naming the span when it is outside the text, empty, cuts a word (without
    `expand`) or overlaps another span (nested entities cannot be IOB tags).
    """
    words = split_words(text)
    starts = [start for _, start, _ in words]
    tags = ["O"] * len(words)
    for start, end, type_ in sorted(spans):
        where = f"entity [{start}, {end}) {type_!r}"
        if not 0 <= start < end <= len(text):
            raise ValueError(f"{where} is not inside the text ({len(text)} characters)")
        if not type_ or any(c.isspace() for c in type_):
            raise ValueError(f"{where}: an entity type must be a non-empty word without spaces")
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        # Every character that is not whitespace (or an invisible format mark) is in exactly one word.
        first = max(bisect.bisect_right(starts, start) - 1, 0)
        covered = [i for i in range(first, bisect.bisect_left(starts, end)) if words[i][2] > start]
        if not covered:
            raise ValueError(f"{where} covers no word: {text[start:end]!r}")
        first, last = covered[0], covered[-1]
        if not expand and (words[first][1] != start or words[last][2] != end):
            cut = words[first] if words[first][1] != start else words[last]
            raise ValueError(
                f"{where} {text[start:end]!r} cuts the word {cut[0]!r} at [{cut[1]}, {cut[2]}); "
                "fix the span, or set data.span_alignment=expand to take whole words"
            )
        taken = [i for i in covered if tags[i] != "O"]
        if taken:
            raise ValueError(
                f"{where} {text[start:end]!r} overlaps another entity at the word {words[taken[0]][0]!r} "
                "(nested or overlapping entities cannot be written as IOB tags)"
            )
        tags[first] = f"B-{type_}"
        for i in covered[1:]:
            tags[i] = f"I-{type_}"
    return [word for word, _, _ in words], tags
