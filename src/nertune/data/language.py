"""The language of a corpus, for the model card's `language:` metadata, when its script tells it: Chinese,
Japanese, Korean, Thai. Languages written in the Latin or another shared script are not guessed (None)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import regex

_LETTER = regex.compile(r"\p{L}")
_SCRIPTS = {
    name: regex.compile(pattern)
    for name, pattern in (
        ("han", r"\p{Han}"),
        ("kana", r"[\p{Hiragana}\p{Katakana}]"),
        ("hangul", r"\p{Hangul}"),
        ("thai", r"\p{Thai}"),
    )
}
SAMPLE_SENTENCES = 2000  # the script of a corpus shows in its first sentences; reading all of a big one is slow


def script_counts(sentences: Iterable[Sequence[str]], limit: int = SAMPLE_SENTENCES) -> dict[str, int]:
    """Letters per script (`han`, `kana`, `hangul`, `thai`, and `letters` in all) in the first `limit` sentences."""
    counts = dict.fromkeys([*_SCRIPTS, "letters"], 0)
    for index, tokens in enumerate(sentences):
        if index >= limit:
            break
        for token in tokens:
            for char in token:
                if not _LETTER.match(char):
                    continue
                counts["letters"] += 1
                for name, pattern in _SCRIPTS.items():
                    if pattern.match(char):
                        counts[name] += 1
                        break
    return counts


def detect_language(sentences: Iterable[Sequence[str]]) -> str | None:
    """The ISO 639-1 code of a corpus (lists of words) written mostly in one script that names its language:
    `zh` (Han without kana), `ja` (Han and kana: Japanese writes grammar in kana), `ko` (Hangul), `th` (Thai);
    None otherwise. Latin words among them (names, `DOTA2`) do not change the answer."""
    counts = script_counts(sentences)
    cjk = counts["han"] + counts["kana"]
    if counts["letters"] == 0:
        return None
    if 2 * cjk > counts["letters"]:
        # Japanese text has kana in every sentence; a Chinese corpus only in a rare loan name.
        return "ja" if 10 * counts["kana"] > cjk else "zh"
    for name, code in (("hangul", "ko"), ("thai", "th")):
        if 2 * counts[name] > counts["letters"]:
            return code
    return None
