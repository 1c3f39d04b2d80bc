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
Writing always produces the strictly valid, canonical encoding of the spans. Guessing a corpus' scheme from its
tags is `nertune.data.scheme_detection`.
BILOU, BMES and BMEWO are read as BIOES (``L`` = ``E``; ``M`` = ``I``, the
inside of a Chinese character-level entity; ``U`` = ``W`` = ``S``); every one
of them can also be written, and each reads the prefixes of the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from nertune.errors import NertuneError

__all__ = [
    "SCHEMES",
    "InvalidTagError",
    "normalize_scheme",
    "parse_tag",
    "convert_tags",
    "tags_to_spans",
    "spans_to_tags",
    "repair_tags",
    "is_valid_sequence",
    "build_label_list",
    "continuation_tag",
]

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


def entity_types(labels: Sequence[str]) -> list[str]:
    """The entity types of a label list, in first-seen order (O has none)."""
    types: list[str] = []
    for label in labels:
        type_ = parse_tag(label)[1]
        if type_ is not None and type_ not in types:
            types.append(type_)
    return types


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
