"""Guessing the tag scheme of a corpus from its tags (`data.tag_scheme: auto`), with the contrary evidence
logged as anomalies rather than turning the guess over."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

from nertune.schemes import InvalidTagError, parse_tag

logger = logging.getLogger(__name__)

# Share of the evidence that may contradict the scheme the rest of a corpus shows: those tags or
# entities are logged as anomalies of that scheme rather than turning the guess over.
ANOMALY_TOLERANCE = 0.05

# The letters each end-marking scheme writes, for choosing among them by the majority of tags.
_VARIANT_LETTERS = {"BIOES": "BIESLU", "BMES": "BMES", "BMEWO": "BMEW"}


def _count_evidence(sequences: Iterable[Sequence[str]]) -> tuple[Counter, Counter]:
    """(tags per prefix letter as written, entity counts: "i_start"/"free_b" for entities starting
    with I-/B- not right after the same type, "marked"/"unmarked" for entities ending on E/S or not)."""
    letters: Counter = Counter()
    entities: Counter = Counter()
    parsed_tags: dict[str, tuple[str, str | None]] = {}  # a corpus has few distinct tags
    for tags in sequences:
        prev_type: str | None = None  # type of the previous word's tag (None after O)
        open_type: str | None = None  # the entity being read, as `_decode` reads it
        for i, tag in enumerate(tags):
            if not isinstance(tag, str) or tag not in parsed_tags:
                try:
                    parsed_tags[tag] = parse_tag(tag)
                except InvalidTagError as err:
                    raise InvalidTagError(f"{err} (position {i})", tag=tag, position=i) from None
            prefix, type_ = parsed_tags[tag]
            if prefix != "O":
                letters[tag[0]] += 1
            if prefix in ("B", "I") and type_ != prev_type:
                entities["free_b" if prefix == "B" else "i_start"] += 1
            if open_type is not None and (prefix in ("O", "B", "S") or type_ != open_type):
                entities["unmarked"] += 1
            open_type = None if prefix in ("O", "E", "S") else type_
            entities["marked"] += prefix in ("E", "S")
            prev_type = type_
        entities["unmarked"] += open_type is not None
    return letters, entities


def _warn(scheme: str, anomalies: int, total: int, what: str, advice: str) -> None:
    """Log `anomalies` of `total` pieces of evidence that contradict `scheme`."""
    mixed = "" if anomalies <= ANOMALY_TOLERANCE * total else " (a mixed corpus: the guess is by majority)"
    logger.warning(
        "tag scheme detected as %s with %d anomal%s%s: %d of %d %s; %s",
        scheme,
        anomalies,
        "y" if anomalies == 1 else "ies",
        mixed,
        anomalies,
        total,
        what,
        advice,
    )


def _other_letters(letters: Counter, scheme_letters: str) -> str:
    return ", ".join(f"{letter}-: {n}" for letter, n in sorted(letters.items()) if letter not in scheme_letters)


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of a corpus: "IOB1", "IOB2", "BIOES", "BMES" or "BMEWO".

    The guess follows the majority of the evidence; the contrary evidence is
    logged as a warning naming the count of anomalies (at most
    ``ANOMALY_TOLERANCE`` of the evidence; more is flagged as a mixed corpus):

    * Entities whose last word is E-, S-, L-, U- or W- mean a scheme that marks
      entity ends (which reads every corpus), unless they are within the
      tolerance of all entities: then the corpus is IOB with stray tags, which
      reading it as IOB reports as errors naming them.
    * Among those schemes, the one whose letters most tags use: "BIOES" (also
      for BILOU, read identically), "BMES" (M inside) or "BMEWO" (W single).
    * IOB1 vs IOB2: entities starting with I- (at sentence start, after O or
      after another type) against B- starting them; B- right after the same type
      is in both. A tie, and a corpus of only O tags, is "IOB2". IOB1 and IOB2
      are read identically, so this never changes the spans.
    """
    letters, entities = _count_evidence(sequences)
    n_tags, n_entities = sum(letters.values()), entities["marked"] + entities["unmarked"]
    n_other = sum(n for letter, n in letters.items() if letter not in "BI")
    if n_other and entities["marked"] > ANOMALY_TOLERANCE * n_entities:
        scores = {name: sum(letters[c] for c in scheme_letters) for name, scheme_letters in _VARIANT_LETTERS.items()}
        scheme = max(scores, key=scores.__getitem__)  # the first of equal scores
        if n_tags > scores[scheme]:
            others = _other_letters(letters, _VARIANT_LETTERS[scheme])
            _warn(
                scheme,
                n_tags - scores[scheme],
                n_tags,
                f"entity tags use a prefix {scheme} does not write ({others})",
                f"they are read as {scheme} (M = I, L = E, U = W = S)",
            )
        if entities["unmarked"]:
            _warn(
                scheme,
                entities["unmarked"],
                n_entities,
                "entities do not end with an E- or S- tag",
                "each is read as ending at its last word",
            )
        return scheme
    n_starts = entities["i_start"] + entities["free_b"]
    scheme = "IOB1" if entities["i_start"] > entities["free_b"] else "IOB2"
    if n_other:
        _warn(
            scheme,
            n_other,
            n_tags,
            f"entity tags use a prefix other than B-/I- ({_other_letters(letters, 'BI')})",
            "reading stops at the first: fix them, or set the tag scheme to BIOES to read them",
        )
    minority = entities["free_b" if scheme == "IOB1" else "i_start"]
    if minority:
        _warn(
            scheme,
            minority,
            n_starts,
            f"entities start with {'B' if scheme == 'IOB1' else 'I'}- after O or another type",
            "each is read as an entity all the same",
        )
    return scheme
