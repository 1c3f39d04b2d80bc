"""Tag strings and tag schemes (IOB1, IOB2, BIOES/BILOU, BMES/BMEWO).

A tag is ``O`` or ``<prefix>-<type>``. The prefix is split off at the *first*
hyphen only, so types may contain hyphens themselves (WNUT's ``B-geo-loc``).

Every conversion goes through entity spans ``(type, start, end_exclusive)``.
Reading is lenient and the same for every scheme (it matches seqeval's default,
conlleval-compatible decoding):

* ``B-X`` and ``S-X`` always start a new entity (``S-X`` also ends it);
* ``I-X`` continues an open entity of type X, otherwise it starts a new one;
* ``E-X`` ends an open entity of type X, otherwise it is a one-word entity;
* ``O`` closes any open entity.

Because of this, IOB1 and IOB2 are read identically; the declared scheme only
decides which prefixes are allowed (only ``B-``/``I-`` in IOB1/IOB2).
Writing always produces the strictly valid, canonical encoding of the spans.
BILOU, BMES and BMEWO are read as BIOES (``L`` = ``E``; ``M`` = ``I``, the
inside of a Chinese character-level entity; ``U`` = ``W`` = ``S``); every one
of them can also be written, and each reads the prefixes of the others.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

from nertune.errors import NertuneError

__all__ = [
    "SCHEMES",
    "ANOMALY_TOLERANCE",
    "InvalidTagError",
    "normalize_scheme",
    "parse_tag",
    "detect_scheme",
    "convert_tags",
    "tags_to_spans",
    "spans_to_tags",
    "repair_tags",
    "is_valid_sequence",
    "build_label_list",
    "continuation_tag",
]

logger = logging.getLogger(__name__)

Span = tuple[str, int, int]

SCHEMES = ("IOB1", "IOB2", "BIOES", "BILOU", "BMES", "BMEWO")
_ALIASES = {"BIO": "IOB2", "IOBES": "BIOES", "BMEOW": "BMEWO"}

# Prefix letters each scheme writes, in label-list order: begin, inside (, end, single).
_WRITE_PREFIXES = {
    "IOB1": ("B", "I"),
    "IOB2": ("B", "I"),
    "BIOES": ("B", "I", "E", "S"),
    "BILOU": ("B", "I", "L", "U"),
    "BMES": ("B", "M", "E", "S"),
    "BMEWO": ("B", "M", "E", "W"),
}
# Prefix letters (as written) each scheme accepts. The schemes that mark entity ends are read
# identically, so each accepts the letters of the others, as BIOES has always accepted L/U.
_END_MARKING_LETTERS = frozenset("BIESLUMW")
_ALLOWED_PREFIXES = {
    "IOB1": frozenset("BI"),
    "IOB2": frozenset("BI"),
    **{name: _END_MARKING_LETTERS for name in ("BIOES", "BILOU", "BMES", "BMEWO")},
}
_NORMALISED_PREFIX = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S", "M": "I", "W": "S"}


class InvalidTagError(NertuneError):
    """A tag string is malformed or not allowed by the tag scheme.

    ``tag`` is the offending value and ``position`` its index in the sentence
    (``None`` when unknown), so readers can point at the file and line.
    """

    def __init__(self, message: str, tag: object = None, position: int | None = None):
        super().__init__(message)
        self.tag = tag
        self.position = position


def normalize_scheme(scheme: str) -> str:
    """Return the canonical scheme name (one of ``SCHEMES``).

    Case-insensitive; "IOBES" is an alias of "BIOES", "BIO" of "IOB2" and
    "BMEOW" of "BMEWO".
    """
    name = str(scheme).strip().upper()
    name = _ALIASES.get(name, name)
    if name not in SCHEMES:
        raise ValueError(
            f"unknown tag scheme {scheme!r}; expected one of IOB1, IOB2 (alias BIO), "
            "BIOES (alias IOBES), BILOU, BMES, BMEWO (alias BMEOW)"
        )
    return name


def parse_tag(tag: str) -> tuple[str, str | None]:
    """Split a tag into ``(prefix, type)``; ``"O"`` gives ``("O", None)``.

    The prefix is one of B, I, E, S: L is returned as E, M as I, U and W as S.
    Raises InvalidTagError, quoting the tag, when it is malformed.
    """
    if not isinstance(tag, str):
        raise InvalidTagError(
            f"tag {tag!r} is of type {type(tag).__name__}, not a string (convert label ids to label names first)",
            tag=tag,
        )
    if tag == "O":
        return "O", None
    if tag == "":
        raise InvalidTagError("empty tag '' (an outside word must be tagged 'O')", tag=tag)
    if tag != tag.strip():
        # Usually a stray '\r' from a Windows line ending or a bad column split.
        raise InvalidTagError(f"tag {tag!r} has leading or trailing whitespace", tag=tag)
    if tag == "o":
        raise InvalidTagError("tag 'o' is invalid: the outside tag is upper-case 'O'", tag=tag)
    prefix, hyphen, type_ = tag.partition("-")
    if not hyphen:
        raise InvalidTagError(f"tag {tag!r} has no prefix: expected 'O' or '<prefix>-<type>' such as 'B-PER'", tag=tag)
    if prefix not in _NORMALISED_PREFIX:
        raise InvalidTagError(
            f"tag {tag!r} has unknown prefix {prefix!r}: expected one of B, I, E, S, L, U, M, W", tag=tag
        )
    if not type_:
        raise InvalidTagError(f"tag {tag!r} has an empty entity type", tag=tag)
    return _NORMALISED_PREFIX[prefix], type_


def _parse_sequence(tags: Sequence[str], scheme: str) -> list[tuple[str, str | None]]:
    """Parse every tag, checking its prefix is allowed by ``scheme`` (canonical)."""
    allowed = _ALLOWED_PREFIXES[scheme]
    parsed = []
    for i, tag in enumerate(tags):
        try:
            prefix, type_ = parse_tag(tag)
        except InvalidTagError as err:
            raise InvalidTagError(f"{err} (position {i})", tag=tag, position=i) from None
        if prefix != "O" and tag[0] not in allowed:
            looks_like = "BMEWO" if tag[0] == "W" else "BMES" if tag[0] == "M" else "BIOES"
            raise InvalidTagError(
                f"tag {tag!r} (position {i}) uses a prefix that scheme {scheme} "
                f"does not have; the data looks like {looks_like}, pass scheme={looks_like!r}",
                tag=tag,
                position=i,
            )
        parsed.append((prefix, type_))
    return parsed


def _decode(parsed: Sequence[tuple[str, str | None]]) -> list[Span]:
    """Lenient span decoding shared by all schemes (see the module docstring)."""
    spans: list[Span] = []
    open_type: str | None = None
    start = 0

    def close(end: int) -> None:
        nonlocal open_type
        if open_type is not None:
            spans.append((open_type, start, end))
            open_type = None

    for i, (prefix, type_) in enumerate(parsed):
        if prefix == "O":
            close(i)
        elif prefix in ("B", "S") or type_ != open_type:
            # A new entity: B/S always, I/E when nothing of this type is open.
            close(i)
            open_type, start = type_, i
        # else: I-X or E-X continuing an open X entity.
        if prefix in ("E", "S"):
            close(i + 1)
    close(len(parsed))
    return spans


def tags_to_spans(tags: Sequence[str], scheme: str = "IOB2") -> list[Span]:
    """Return the entity spans ``(type, start, end_exclusive)`` of one sentence.

    Invalid sequences are read leniently (an I-X or E-X after O or after another
    type starts a new entity), exactly as ``repair_tags`` repairs them.
    """
    scheme = normalize_scheme(scheme)
    return _decode(_parse_sequence(tags, scheme))


def _span_tags(type_: str, size: int, scheme: str, after_same_type: bool) -> list[str]:
    """Tags of one entity of ``size`` words written in ``scheme``."""
    if scheme in ("IOB1", "IOB2"):
        # IOB1 uses B- only where an entity directly follows one of the same type.
        first = "I" if scheme == "IOB1" and not after_same_type else "B"
        return [f"{first}-{type_}"] + [f"I-{type_}"] * (size - 1)
    begin, inside, end, single = _WRITE_PREFIXES[scheme]
    if size == 1:
        return [f"{single}-{type_}"]
    return [f"{begin}-{type_}"] + [f"{inside}-{type_}"] * (size - 2) + [f"{end}-{type_}"]


def spans_to_tags(spans: Iterable[Span], length: int, scheme: str = "IOB2") -> list[str]:
    """Write spans ``(type, start, end_exclusive)`` as a valid tag sequence.

    Raises ValueError for an empty, out-of-range or overlapping span.
    """
    scheme = normalize_scheme(scheme)
    tags = ["O"] * length
    prev_end, prev_type = 0, None
    for type_, start, stop in sorted(spans, key=lambda s: (s[1], s[2])):
        if not isinstance(type_, str) or not type_:
            raise ValueError(f"span {(type_, start, stop)!r} has no entity type")
        if not 0 <= start < stop <= length:
            raise ValueError(f"span {(type_, start, stop)!r} is empty or outside a sentence of length {length}")
        if start < prev_end:
            raise ValueError(f"span {(type_, start, stop)!r} overlaps the previous span")
        after_same_type = start == prev_end and prev_type == type_
        tags[start:stop] = _span_tags(type_, stop - start, scheme, after_same_type)
        prev_end, prev_type = stop, type_
    return tags


def convert_tags(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Convert one sentence's tags from scheme ``source`` to scheme ``target``.

    Exact for valid input. The output is always strictly valid in ``target``:
    invalid input is repaired as ``repair_tags`` does (so with ``source ==
    target`` a valid sequence comes back unchanged).
    """
    return spans_to_tags(tags_to_spans(tags, source), len(tags), target)


def repair_tags(tags: Sequence[str], scheme: str = "IOB2") -> list[str]:
    """Return the valid sequence in ``scheme`` that has the spans ``tags_to_spans`` reads."""
    return convert_tags(tags, scheme, scheme)


def is_valid_sequence(tags: Sequence[str], scheme: str = "IOB2") -> bool:
    """Whether ``tags`` is strictly valid in ``scheme``.

    IOB2: I-X only after B-X or I-X. IOB1: B-X only right after B-X or I-X
    (it separates adjacent same-type entities). BIOES/BILOU/BMES/BMEWO (read as
    BIOES): B-X and I-X must be followed by I-X or E-X, and I-X/E-X must follow
    B-X or I-X.
    A prefix the scheme does not have makes the sequence invalid; a malformed
    tag string raises InvalidTagError.
    """
    scheme = normalize_scheme(scheme)
    parsed = [parse_tag(tag) for tag in tags]
    if any(p != "O" and tag[0] not in _ALLOWED_PREFIXES[scheme] for tag, (p, _) in zip(tags, parsed)):
        return False
    prev_prefix, prev_type = "O", None
    if scheme in ("IOB1", "IOB2"):
        for prefix, type_ in parsed:
            continues = prev_prefix != "O" and prev_type == type_
            if scheme == "IOB2" and prefix == "I" and not continues:
                return False
            if scheme == "IOB1" and prefix == "B" and not continues:
                return False
            prev_prefix, prev_type = prefix, type_
        return True
    open_type: str | None = None  # BIOES: type of the entity awaiting its E-
    for prefix, type_ in parsed:
        if prefix in ("O", "B", "S"):
            if open_type is not None:
                return False
            open_type = type_ if prefix == "B" else None
        else:  # I or E
            if open_type != type_:
                return False
            if prefix == "E":
                open_type = None
    return open_type is None


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


def build_label_list(sequences_or_tags: Iterable[Sequence[str] | str], scheme: str) -> list[str]:
    """Return the deterministic label list for ``scheme``.

    "O" first, then the entity types in alphabetical order, each with every
    prefix of the scheme in scheme order (IOB1/IOB2: B, I; BIOES: B, I, E, S;
    BILOU: B, I, L, U; BMES: B, M, E, S; BMEWO: B, M, E, W). Only the types
    seen matter, so the list does not depend on which prefixes happen to occur.
    Accepts sentences or a flat list of tags.
    """
    scheme = normalize_scheme(scheme)
    types: set[str] = set()
    for item in sequences_or_tags:
        for tag in [item] if isinstance(item, str) else item:
            _, type_ = parse_tag(tag)
            if type_ is not None:
                types.add(type_)
    labels = ["O"]
    for type_ in sorted(types):
        labels.extend(f"{prefix}-{type_}" for prefix in _WRITE_PREFIXES[scheme])
    return labels


def continuation_tag(tag: str, scheme: str = "IOB2") -> str:
    """The tag for a word's continuation sub-tokens when all sub-tokens are labelled.

    ``O`` stays ``O``; any entity tag gives the scheme's inside tag (``I-<type>``,
    ``M-<type>`` in BMES/BMEWO), so a word never gets a second B-. In BIOES this makes e.g. an S-X word
    ``S-X I-X``, which is not strictly valid at sub-token level; that is fine
    because evaluation is always at word level on the first sub-token, so this
    only affects the training signal.
    """
    scheme = normalize_scheme(scheme)
    prefix, type_ = _parse_sequence([tag], scheme)[0]
    return "O" if prefix == "O" else f"{_WRITE_PREFIXES[scheme][1]}-{type_}"
