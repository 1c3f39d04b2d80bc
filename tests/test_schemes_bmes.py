"""BMES and BMEWO (character-level Chinese NER: MSRA, Resume, Weibo, OntoNotes-4) and scheme detection on
realistic corpora, including published corpora with a few annotation anomalies."""

import logging
import random

import pytest

from nertune.data import load_splits, read_conll
from nertune.data.scheme_detection import detect_scheme
from nertune.evaluation.metrics import entity_metrics, token_report
from nertune.heads.crf import allowed_transitions
from nertune.recipe.schema import load_recipe
from nertune.schemes import (
    SCHEMES,
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

# Resume NER (train.char.bmes): one character and its tag per line, CRLF line endings.
RESUME_LINES = [
    "高 B-NAME",
    "勇 E-NAME",
    "： O",
    "男 O",
    "， O",
    "中 B-CONT",
    "国 M-CONT",
    "国 M-CONT",
    "籍 E-CONT",
    "， O",
    "无 O",
    "境 O",
    "外 O",
    "居 O",
    "留 O",
    "权 O",
    "。 O",
    "",
    "1 O",
    "9 O",
    "6 O",
    "6 O",
    "年 O",
    "出 O",
    "生 O",
    "， O",
    "汉 S-RACE",
    "族 O",
    "。 O",
    "",
    "现 O",
    "任 O",
    "浙 B-ORG",
    "江 M-ORG",
    "康 M-ORG",
    "恩 M-ORG",
    "贝 M-ORG",
    "制 M-ORG",
    "药 M-ORG",
    "股 M-ORG",
    "份 M-ORG",
    "有 M-ORG",
    "限 M-ORG",
    "公 M-ORG",
    "司 E-ORG",
    "董 B-TITLE",
    "事 M-TITLE",
    "长 E-TITLE",
    "。 O",
    "",
]


def random_spans(rng: random.Random, length: int, types=("PER", "LOC", "geo-loc")) -> list[tuple[str, int, int]]:
    """Non-overlapping spans, often adjacent and of the same type (the hard case for IOB1/BMES)."""
    spans, position = [], 0
    while position < length:
        position += rng.choice([0, 0, 1, 2])
        size = rng.choice([1, 1, 2, 3, 5])
        if position + size > length:
            break
        spans.append((rng.choice(types), position, position + size))
        position += size
    return spans


def iob1_corpus(n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    corpus = []
    for _ in range(n):
        length = rng.randint(3, 12)
        corpus.append(spans_to_tags(random_spans(rng, length), length, "IOB1"))
    return corpus


# --- reading and writing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("M-CONT", ("I", "CONT")),
        ("W-PER", ("S", "PER")),
        ("B-NAME", ("B", "NAME")),
        ("E-ORG", ("E", "ORG")),
        ("M-geo-loc", ("I", "geo-loc")),
    ],
)
def test_parse_tag_reads_m_as_inside_and_w_as_single(tag, expected):
    assert parse_tag(tag) == expected


def test_scheme_names_and_aliases():
    assert {"BMES", "BMEWO"} <= set(SCHEMES)
    assert normalize_scheme("bmes") == "BMES"
    assert normalize_scheme("BMEOW") == normalize_scheme("bmewo") == "BMEWO"
    with pytest.raises(ValueError, match="BMES, BMEWO"):
        normalize_scheme("BMSE")


def test_bmes_sentence_converts_to_the_training_schemes_and_back():
    bmes = ["B-CONT", "M-CONT", "M-CONT", "E-CONT", "O", "S-RACE", "B-NAME", "E-NAME", "S-NAME"]
    spans = [("CONT", 0, 4), ("RACE", 5, 6), ("NAME", 6, 8), ("NAME", 8, 9)]
    assert tags_to_spans(bmes, "BMES") == spans
    iob2 = convert_tags(bmes, "BMES", "IOB2")
    assert iob2 == ["B-CONT", "I-CONT", "I-CONT", "I-CONT", "O", "B-RACE", "B-NAME", "I-NAME", "B-NAME"]
    assert convert_tags(bmes, "BMES", "BIOES") == [
        "B-CONT",
        "I-CONT",
        "I-CONT",
        "E-CONT",
        "O",
        "S-RACE",
        "B-NAME",
        "E-NAME",
        "S-NAME",
    ]
    assert convert_tags(iob2, "IOB2", "BMES") == bmes
    assert convert_tags(iob2, "IOB2", "BMEWO") == [t.replace("S-", "W-") for t in bmes]
    assert convert_tags(iob2, "IOB2", "BMEOW") == convert_tags(iob2, "IOB2", "BMEWO")


@pytest.mark.parametrize("scheme", ["BMES", "BMEWO"])
def test_random_spans_round_trip(scheme):
    rng = random.Random(11)
    for _ in range(2000):
        length = rng.randint(0, 15)
        spans = random_spans(rng, length)
        tags = spans_to_tags(spans, length, scheme)
        assert is_valid_sequence(tags, scheme)
        assert {tag[0] for tag in tags} <= set(scheme) | {"O"}  # only the scheme's own letters are written
        assert tags_to_spans(tags, scheme) == spans
        for other in ("IOB1", "IOB2", "BIOES", "BILOU", "BMES", "BMEWO"):
            back = convert_tags(convert_tags(tags, scheme, other), other, scheme)
            assert back == tags


@pytest.mark.parametrize("scheme, letters", [("BMES", "BMES"), ("BMEWO", "BMEW")])
def test_random_tag_sequences_read_as_their_bioes_spelling(scheme, letters):
    # M/W are spellings of I/S: any sequence (valid or not) has the spans, validity and repair of its BIOES twin.
    rng = random.Random(5)
    labels = ["O"] + [f"{letter}-{t}" for letter in letters for t in ("A", "geo-loc")]
    twin = {"M": "I", "W": "S"}
    for _ in range(3000):
        tags = [rng.choice(labels) for _ in range(rng.randint(0, 8))]
        bioes = [twin.get(tag[0], tag[0]) + tag[1:] for tag in tags]
        assert tags_to_spans(tags, scheme) == tags_to_spans(bioes, "BIOES")
        assert is_valid_sequence(tags, scheme) == is_valid_sequence(bioes, "BIOES")
        repaired = repair_tags(tags, scheme)
        assert is_valid_sequence(repaired, scheme) and tags_to_spans(repaired, scheme) == tags_to_spans(tags, scheme)


def test_m_and_w_are_not_iob_prefixes():
    with pytest.raises(InvalidTagError, match=r"'M-CONT' \(position 1\).*IOB2.*BMES") as info:
        convert_tags(["B-CONT", "M-CONT", "E-CONT"], "IOB2", "IOB2")
    assert info.value.position == 1
    with pytest.raises(InvalidTagError, match="BMEWO"):
        tags_to_spans(["W-PER"], "IOB1")
    assert not is_valid_sequence(["B-X", "M-X"], "IOB2")
    with pytest.raises(InvalidTagError, match="unknown prefix 'X'.*M, W"):
        parse_tag("X-PER")


def test_label_list_continuation_tag_and_crf_transitions():
    corpus = [["B-NAME", "E-NAME"], ["S-RACE"]]
    assert build_label_list(corpus, "BMES") == [
        "O",
        "B-NAME",
        "M-NAME",
        "E-NAME",
        "S-NAME",
        "B-RACE",
        "M-RACE",
        "E-RACE",
        "S-RACE",
    ]
    assert build_label_list(corpus, "BMEWO")[1:5] == ["B-NAME", "M-NAME", "E-NAME", "W-NAME"]
    assert continuation_tag("S-NAME", "BMES") == "M-NAME"
    assert continuation_tag("B-NAME", "BIOES") == "I-NAME"
    labels = build_label_list(corpus, "BMES")
    start, transition, end = allowed_transitions(labels, "BMES")
    index = labels.index
    assert transition[index("B-NAME")][index("M-NAME")] and transition[index("M-NAME")][index("E-NAME")]
    assert not transition[index("B-NAME")][index("O")] and not start[index("M-NAME")]
    assert end[index("S-NAME")] and not end[index("M-NAME")]


# --- detection ---------------------------------------------------------------------------------


def test_resume_char_bmes_file_with_crlf_is_detected_and_converted(tmp_path):
    path = tmp_path / "train.char.bmes"
    path.write_bytes(("\r\n".join(RESUME_LINES) + "\r\n").encode("utf-8"))
    ds = read_conll(path)
    assert ds["tokens"][0][:4] == ["高", "勇", "：", "男"]
    assert ds["ner_tags"][2][-4:] == ["B-TITLE", "M-TITLE", "E-TITLE", "O"]  # no '\r' left
    assert detect_scheme(ds["ner_tags"]) == "BMES"
    iob2 = [convert_tags(tags, "BMES", "IOB2") for tags in ds["ner_tags"]]
    assert iob2[0][:9] == ["B-NAME", "I-NAME", "O", "O", "O", "B-CONT", "I-CONT", "I-CONT", "I-CONT"]
    assert tags_to_spans(iob2[2]) == [("ORG", 2, 15), ("TITLE", 15, 18)]


@pytest.mark.parametrize("tag_scheme", ["auto", "BMES"])
def test_char_bmes_files_load_as_iob2_splits(tmp_path, tag_scheme):
    crlf = ("\r\n".join(RESUME_LINES) + "\r\n").encode("utf-8")
    (tmp_path / "train.char.bmes").write_bytes(crlf)
    (tmp_path / "dev.char.bmes").write_bytes(crlf)
    recipe = load_recipe(
        None,
        [
            "model_name_or_path=unused",
            "data.train_file=train.char.bmes",
            "data.validation_file=dev.char.bmes",
            "data.test_ratio=0",
            f"data.tag_scheme={tag_scheme}",
        ],
    )
    splits, source = load_splits(recipe.data, base_dir=tmp_path)
    assert source == "BMES"
    assert splits["validation"]["ner_tags"][1][-4:] == ["O", "B-RACE", "O", "O"]
    assert splits["train"]["ner_tags"][2][2:5] == ["B-ORG", "I-ORG", "I-ORG"]


@pytest.mark.parametrize(
    "corpus, expected",
    [
        ([["B-CONT", "M-CONT", "E-CONT", "O", "S-NAME"]], "BMES"),
        ([["B-CONT", "M-CONT", "E-CONT", "O", "W-NAME"]], "BMEWO"),
        ([["B-NAME", "E-NAME", "O", "W-RACE"]], "BMEWO"),  # no entity long enough for an M-
        ([["B-NAME", "E-NAME", "O", "S-RACE"]], "BIOES"),  # BMES without M- is BIOES, read identically
        ([["U-PER", "O", "B-LOC", "L-LOC"]], "BIOES"),
    ],
)
def test_detect_end_marking_schemes(corpus, expected, caplog):
    with caplog.at_level(logging.WARNING, logger="nertune.data.scheme_detection"):
        assert detect_scheme(corpus) == expected
    assert not caplog.records  # clean corpora are not anomalous


def test_iob1_corpus_with_two_stray_b_tags_stays_iob1(caplog):
    corpus = iob1_corpus(3000)
    corpus[100] = ["O", "B-PER", "I-PER", "O"]  # B- starting an entity after O: not IOB1
    corpus[2000] = ["B-LOC", "O"]
    with caplog.at_level(logging.WARNING, logger="nertune.data.scheme_detection"):
        assert detect_scheme(corpus) == "IOB1"
    (record,) = caplog.records
    assert "IOB1 with 2 anomalies" in record.getMessage()
    assert "B-" in record.getMessage() and "mixed" not in record.getMessage()
    # The stray B- tags are still entities: IOB1 and IOB2 read them alike.
    assert convert_tags(corpus[100], "IOB1", "IOB2") == ["O", "B-PER", "I-PER", "O"]


def test_iob2_corpus_with_a_few_i_starts_stays_iob2(caplog):
    rng = random.Random(3)
    corpus = []
    for _ in range(500):
        length = rng.randint(3, 12)
        corpus.append(spans_to_tags(random_spans(rng, length), length, "IOB2"))
    corpus += [["O", "I-PER", "O"], ["I-LOC"], ["O", "I-ORG"]]
    with caplog.at_level(logging.WARNING, logger="nertune.data.scheme_detection"):
        assert detect_scheme(corpus) == "IOB2"
    assert "IOB2 with 3 anomalies" in caplog.text and "start with I-" in caplog.text


def test_mixed_iob_starts_follow_the_majority_and_say_so(caplog):
    corpus = [["O", "I-PER"]] * 30 + [["B-PER", "O"]] * 10
    with caplog.at_level(logging.WARNING, logger="nertune.data.scheme_detection"):
        assert detect_scheme(corpus) == "IOB1"
    assert "IOB1 with 10 anomalies" in caplog.text and "mixed" in caplog.text
    assert detect_scheme([["O", "I-PER"], ["B-PER", "O"]]) == "IOB2"  # a tie is IOB2


def test_iob2_corpus_with_a_stray_end_tag_is_iob2_and_reading_names_the_tag(caplog):
    corpus = [["B-PER", "I-PER", "O", "B-LOC"]] * 200 + [["O", "S-PER", "O"]]
    with caplog.at_level(logging.WARNING, logger="nertune.data.scheme_detection"):
        assert detect_scheme(corpus) == "IOB2"
    assert "IOB2 with 1 anomaly" in caplog.text and "S-: 1" in caplog.text and "BIOES" in caplog.text
    with pytest.raises(InvalidTagError, match=r"'S-PER' \(position 1\)"):
        convert_tags(corpus[-1], "IOB2", "IOB2")
    # More end-marked entities than the tolerance: a BIOES corpus with missing E- tags, which reads everything.
    assert detect_scheme([["B-PER", "I-PER", "O"]] * 20 + [["O", "S-PER"]] * 5) == "BIOES"


def test_bmes_corpus_with_stray_tags_stays_bmes(caplog):
    corpus = [["B-CONT", "M-CONT", "E-CONT", "O", "S-NAME"]] * 400
    corpus += [["B-ORG", "I-ORG", "E-ORG"], ["B-PER", "O"]]  # an I- (BIOES) and an entity with no end tag
    with caplog.at_level(logging.WARNING, logger="nertune.data.scheme_detection"):
        assert detect_scheme(corpus) == "BMES"
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "BMES with 1 anomaly" in messages[0] and "I-: 1" in messages[0]
    assert "BMES with 1 anomaly" in messages[1] and "do not end" in messages[1]
    assert tags_to_spans(corpus[-2], "BMES") == [("ORG", 0, 3)]


def test_detection_points_at_a_malformed_tag():
    with pytest.raises(InvalidTagError, match=r"'M_CONT'.*position 1") as info:
        detect_scheme([["B-CONT", "M_CONT"]])
    assert info.value.position == 1


# --- scoring -----------------------------------------------------------------------------------


def test_strict_metrics_on_bmes_converted_and_raw():
    gold = [["B-CONT", "M-CONT", "E-CONT", "O", "S-NAME"], ["B-ORG", "E-ORG", "O", "O"]]
    pred = [["B-CONT", "M-CONT", "E-CONT", "O", "O"], ["B-ORG", "E-ORG", "O", "S-ORG"]]
    raw = entity_metrics(gold, pred, "BMES", strict=True)  # M-/S- mapped to I-/S- for seqeval's IOBES
    assert (raw["precision"], raw["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert raw["per_type"]["CONT"]["f1"] == 1.0 and raw["per_type"]["NAME"]["recall"] == 0.0
    # Training converts BMES to the training scheme before scoring: the same scores.
    for target in ("IOB2", "BIOES"):
        converted = entity_metrics(
            [convert_tags(t, "BMES", target) for t in gold],
            [convert_tags(t, "BMES", target) for t in pred],
            target,
            strict=True,
        )
        assert {k: converted[k] for k in ("precision", "recall", "f1", "per_type")} == {
            k: raw[k] for k in ("precision", "recall", "f1", "per_type")
        }
    # Strict: a B- never closed by E- is no entity; the default (conlleval) reading counts it.
    unclosed = [["B-CONT", "M-CONT", "E-CONT", "O", "B-NAME"], ["B-ORG", "E-ORG", "O", "O"]]
    strict = entity_metrics(gold, unclosed, "BMES", strict=True)
    assert (strict["precision"], strict["recall"]) == (1.0, pytest.approx(2 / 3))  # NAME not predicted
    lenient = entity_metrics(gold, unclosed, "BMES")
    assert (lenient["precision"], lenient["recall"]) == (1.0, 1.0)  # the lone B-NAME is NAME [4, 5)
    bmewo = [[t.replace("S-", "W-") for t in s] for s in gold]
    assert entity_metrics(bmewo, bmewo, "BMEWO", strict=True)["f1"] == 1.0


def test_token_report_orders_bmes_labels():
    gold = [["B-NAME", "M-NAME", "E-NAME", "S-NAME", "O"]]
    report = token_report(gold, gold)
    lines = [line.split()[0] for line in report.splitlines()[2:7]]
    assert lines == ["O", "B-NAME", "M-NAME", "E-NAME", "S-NAME"]
