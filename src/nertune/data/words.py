"""Raw text into words with character offsets: how `nertune predict`/`serve` read text, and the words that
span-annotated corpora (Doccano, spaCy, Prodigy JSONL: text + character spans) are tagged on (`spans.py`)."""

from __future__ import annotations

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
