import random

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from nertune.data.scheme_detection import detect_scheme
from nertune.schemes import (
    InvalidTagError,
    build_label_list,
    continuation_tag,
    convert_tags,
    is_valid_sequence,
    normalize_scheme,
    parse_tag,
    repair_tags,
    spans_to_tags,
    tags_to_spans,
)

# --- parse_tag -------------------------------------------------------------


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("O", ("O", None)),
        ("B-PER", ("B", "PER")),
        ("I-LOC", ("I", "LOC")),
        ("E-ORG", ("E", "ORG")),
        ("S-MISC", ("S", "MISC")),
        ("L-ORG", ("E", "ORG")),  # BILOU read as BIOES
        ("U-MISC", ("S", "MISC")),
        ("B-geo-loc", ("B", "geo-loc")),  # split on the first hyphen only
        ("I-musicartist", ("I", "musicartist")),
        ("B-other", ("B", "other")),
    ],
)
def test_parse_tag(tag, expected):
    assert parse_tag(tag) == expected


@pytest.mark.parametrize(
    "tag, fragment",
    [
        ("", "empty tag"),
        ("I-", "empty entity type"),
        ("X-PER", "unknown prefix 'X'"),
        ("b-PER", "unknown prefix 'b'"),
        ("PER", "no prefix"),
        ("o", "upper-case 'O'"),
        ("B-PER\r", "whitespace"),
        (3, "not a string"),
    ],
)
def test_parse_tag_rejects(tag, fragment):
    with pytest.raises(InvalidTagError) as info:
        parse_tag(tag)
    assert fragment in str(info.value)
    assert repr(tag) in str(info.value)  # the message quotes the offending tag
    assert info.value.tag == tag
    assert isinstance(info.value, ValueError)


def test_sequence_errors_give_position_and_reject_foreign_prefixes():
    with pytest.raises(InvalidTagError, match=r"'PER' .*\(position 2\)") as info:
        tags_to_spans(["O", "B-PER", "PER"])
    assert info.value.position == 2
    # E-/S- are not part of IOB2: that is a mis-declared scheme, not something to guess around.
    with pytest.raises(InvalidTagError, match="S-PER.*position 1.*BIOES") as info:
        tags_to_spans(["O", "S-PER"], "IOB2")
    assert info.value.position == 1


def test_normalize_scheme():
    assert normalize_scheme("iob2") == "IOB2"
    assert normalize_scheme("BIO") == "IOB2"
    assert normalize_scheme("IOBES") == "BIOES"
    assert normalize_scheme("bilou") == "BILOU"
    with pytest.raises(ValueError, match="unknown tag scheme 'IOE2'"):
        normalize_scheme("IOE2")


# --- conversions -----------------------------------------------------------


def test_iob1_to_iob2_conll2003_sentence():
    # CoNLL-2003 train: "U.N. official Ekeus heads for Baghdad ." (original IOB1 tags)
    iob1 = ["I-ORG", "O", "I-PER", "O", "O", "I-LOC", "O"]
    assert convert_tags(iob1, "IOB1", "IOB2") == ["B-ORG", "O", "B-PER", "O", "O", "B-LOC", "O"]
    # "EU rejects German call to boycott British lamb ."
    iob1 = ["I-ORG", "O", "I-MISC", "O", "O", "O", "I-MISC", "O", "O"]
    assert convert_tags(iob1, "IOB1", "IOB2") == ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]


def test_iob1_b_separates_adjacent_same_type_entities():
    # In IOB1 a B- appears only right after a word of the same type.
    iob1 = ["I-ORG", "I-ORG", "B-ORG", "I-ORG", "O", "I-PER", "I-LOC"]
    iob2 = ["B-ORG", "I-ORG", "B-ORG", "I-ORG", "O", "B-PER", "B-LOC"]
    assert tags_to_spans(iob1, "IOB1") == [("ORG", 0, 2), ("ORG", 2, 4), ("PER", 5, 6), ("LOC", 6, 7)]
    assert convert_tags(iob1, "IOB1", "IOB2") == iob2
    assert convert_tags(iob2, "IOB2", "IOB1") == iob1
    assert is_valid_sequence(iob1, "IOB1")
    assert not is_valid_sequence(iob1, "IOB2")


def test_bioes_round_trip():
    iob2 = ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-geo-loc"]
    bioes = ["B-PER", "I-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "S-geo-loc"]
    assert convert_tags(iob2, "IOB2", "BIOES") == bioes
    assert convert_tags(bioes, "BIOES", "IOB2") == iob2
    assert convert_tags(bioes, "IOBES", "BIOES") == bioes


def test_bilou_is_read_as_bioes_and_can_be_written():
    bilou = ["U-PER", "O", "B-LOC", "I-LOC", "L-LOC"]
    assert tags_to_spans(bilou, "BIOES") == [("PER", 0, 1), ("LOC", 2, 5)]
    assert tags_to_spans(bilou, "BILOU") == [("PER", 0, 1), ("LOC", 2, 5)]
    assert convert_tags(bilou, "BILOU", "IOB2") == ["B-PER", "O", "B-LOC", "I-LOC", "I-LOC"]
    assert convert_tags(bilou, "BILOU", "BIOES") == ["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"]
    assert convert_tags(["B-PER", "O", "B-LOC", "I-LOC", "I-LOC"], "IOB2", "BILOU") == bilou
    assert is_valid_sequence(bilou, "BIOES") and is_valid_sequence(bilou, "BILOU")


def test_same_scheme_is_a_validated_copy():
    tags = ["B-PER", "I-PER", "O"]
    out = convert_tags(tags, "IOB2", "IOB2")
    assert out == tags and out is not tags
    with pytest.raises(InvalidTagError):
        convert_tags(["B-PER", "I"], "IOB2", "IOB2")


# --- spans and repair ------------------------------------------------------


def test_tags_to_spans_end_exclusive_and_hyphenated_types():
    tags = ["B-geo-loc", "I-geo-loc", "O", "B-person", "O"]
    assert tags_to_spans(tags) == [("geo-loc", 0, 2), ("person", 3, 4)]
    assert tags_to_spans([]) == []
    assert tags_to_spans(["O", "O"]) == []
    assert tags_to_spans(["B-X", "I-X"]) == [("X", 0, 2)]  # entity ending the sentence


def test_repair_iob2():
    tags = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "B-PER", "I-LOC"]
    # I-X after O / sentence start / another type starts an entity; B-X always does.
    assert tags_to_spans(tags) == [
        ("PER", 0, 2),
        ("LOC", 3, 4),
        ("LOC", 4, 5),
        ("ORG", 5, 6),
        ("PER", 6, 7),
        ("LOC", 7, 8),
    ]
    assert repair_tags(tags) == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG", "B-PER", "B-LOC"]


@pytest.mark.parametrize(
    "tags, repaired",
    [
        (["B-PER", "O"], ["S-PER", "O"]),  # B without E: one-word entity
        (["I-PER", "I-PER"], ["B-PER", "E-PER"]),
        (["B-PER", "I-LOC", "E-LOC"], ["S-PER", "B-LOC", "E-LOC"]),
        (["E-X", "E-X"], ["S-X", "S-X"]),
        (["B-X", "S-X", "E-X"], ["S-X", "S-X", "S-X"]),
        (["B-X", "B-X", "E-X"], ["S-X", "B-X", "E-X"]),
    ],
)
def test_repair_bioes(tags, repaired):
    assert repair_tags(tags, "BIOES") == repaired
    assert tags_to_spans(repaired, "BIOES") == tags_to_spans(tags, "BIOES")


def test_spans_to_tags_and_its_errors():
    assert spans_to_tags([("LOC", 3, 4), ("PER", 0, 2)], 5) == ["B-PER", "I-PER", "O", "B-LOC", "O"]
    assert spans_to_tags([("PER", 0, 2), ("PER", 2, 3)], 3, "IOB1") == ["I-PER", "I-PER", "B-PER"]
    assert spans_to_tags([], 2, "BIOES") == ["O", "O"]
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags([("PER", 0, 2), ("LOC", 1, 3)], 3)
    with pytest.raises(ValueError, match="outside a sentence of length 3"):
        spans_to_tags([("PER", 2, 4)], 3)
    with pytest.raises(ValueError, match="empty"):
        spans_to_tags([("PER", 1, 1)], 3)


@pytest.mark.parametrize(
    "tags, scheme, valid",
    [
        (["O", "I-PER"], "IOB2", False),
        (["B-PER", "I-LOC"], "IOB2", False),
        (["B-PER", "B-PER", "I-PER"], "IOB2", True),
        (["O", "I-PER"], "IOB1", True),
        (["O", "B-PER"], "IOB1", False),  # B- only separates same-type neighbours
        (["I-PER", "B-PER", "B-PER"], "IOB1", True),
        (["B-X", "E-X"], "BIOES", True),
        (["B-X", "I-X", "I-X", "E-X", "S-X"], "BIOES", True),
        (["B-X", "I-X"], "BIOES", False),  # I-X must be followed by I-X or E-X
        (["B-X", "I-X", "O"], "BIOES", False),
        (["B-X", "O"], "BIOES", False),
        (["O", "E-X"], "BIOES", False),
        (["B-X", "E-Y"], "BIOES", False),
        (["B-X", "S-X"], "BIOES", False),
        (["U-X", "B-Y", "L-Y"], "BILOU", True),
        (["S-X"], "IOB2", False),  # prefix not in the scheme
        ([], "IOB2", True),
    ],
)
def test_is_valid_sequence(tags, scheme, valid):
    assert is_valid_sequence(tags, scheme) is valid


def test_is_valid_sequence_raises_on_malformed_tag():
    with pytest.raises(InvalidTagError):
        is_valid_sequence(["O", "PER"], "IOB2")


@pytest.mark.parametrize("scheme, prefixes", [("IOB2", "BI"), ("IOB1", "BI"), ("BIOES", "BIES")])
def test_random_sequences_match_seqeval_and_repair_is_consistent(scheme, prefixes):
    rng = random.Random(1234)
    labels = ["O"] + [f"{p}-{t}" for p in prefixes for t in ("A", "geo-loc")]
    for _ in range(3000):
        tags = [rng.choice(labels) for _ in range(rng.randint(0, 7))]
        spans = tags_to_spans(tags, scheme)
        # Our lenient reading is seqeval's default (conlleval) reading.
        assert spans == [(t, s, e + 1) for t, s, e in get_entities(tags)]
        repaired = repair_tags(tags, scheme)
        assert is_valid_sequence(repaired, scheme)
        assert tags_to_spans(repaired, scheme) == spans
        # A valid sequence is exactly the canonical writing of its own spans.
        assert is_valid_sequence(tags, scheme) == (repaired == tags)
        for target in ("IOB1", "IOB2", "BIOES", "BILOU"):
            converted = convert_tags(tags, scheme, target)
            assert is_valid_sequence(converted, target)
            assert tags_to_spans(converted, target) == spans


# --- detect_scheme ---------------------------------------------------------


@pytest.mark.parametrize(
    "corpus, expected",
    [
        ([["I-ORG", "O", "I-PER", "O"], ["O", "I-LOC", "I-LOC"]], "IOB1"),
        ([["I-ORG", "I-ORG", "B-ORG", "O"]], "IOB1"),
        ([["B-ORG", "O", "B-PER", "I-PER"]], "IOB2"),
        ([["B-PER", "B-PER", "O"]], "IOB2"),
        ([["B-PER", "O"], ["O", "I-PER"]], "IOB2"),  # mixed starts: IOB2 with an error
        ([["B-PER", "E-PER", "O"]], "BIOES"),
        ([["O"], ["S-LOC"]], "BIOES"),
        ([["U-PER", "O", "B-LOC", "L-LOC"]], "BIOES"),
        ([["O", "O"], ["O"]], "IOB2"),
        ([], "IOB2"),
    ],
)
def test_detect_scheme(corpus, expected):
    assert detect_scheme(corpus) == expected


def test_detect_scheme_accepts_a_generator():
    assert detect_scheme(tags for tags in [["O", "I-X"]]) == "IOB1"


# --- label list and sub-tokens ---------------------------------------------


def test_build_label_list_order_and_completeness():
    corpus = [["B-PER", "O"], ["B-LOC", "I-LOC"], ["B-geo-loc"]]
    # PER and geo-loc were only seen as B-, yet still get their I- label.
    assert build_label_list(corpus, "IOB2") == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER", "B-geo-loc", "I-geo-loc"]
    assert build_label_list(corpus, "BIOES") == [
        "O",
        "B-LOC",
        "I-LOC",
        "E-LOC",
        "S-LOC",
        "B-PER",
        "I-PER",
        "E-PER",
        "S-PER",
        "B-geo-loc",
        "I-geo-loc",
        "E-geo-loc",
        "S-geo-loc",
    ]
    assert build_label_list(["I-PER", "O"], "BILOU") == ["O", "B-PER", "I-PER", "L-PER", "U-PER"]
    # Same types, different prefixes seen, different order: same list.
    assert build_label_list(iter([["I-LOC"], ["S-PER"]]), "IOBES") == build_label_list(corpus[:2], "BIOES")
    assert build_label_list([["O"]], "IOB2") == ["O"]


def test_continuation_tag():
    assert continuation_tag("B-PER") == "I-PER"
    assert continuation_tag("I-PER") == "I-PER"
    assert continuation_tag("O") == "O"
    assert continuation_tag("B-geo-loc", "IOB1") == "I-geo-loc"
    for tag in ("B-X", "I-X", "E-X", "S-X", "L-X", "U-X"):
        assert continuation_tag(tag, "BIOES") == "I-X"
    with pytest.raises(InvalidTagError):
        continuation_tag("S-X", "IOB2")
