import json
import warnings

import pytest
from seqeval.metrics import f1_score

from nertune.evaluation.metrics import entity_metrics, format_entity_report, token_metrics, token_report
from nertune.schemes import InvalidTagError

# Gold entities: PER(0,2) LOC(3,4) | ORG(0,3) PER(4,5)                       -> 4
# Pred entities: PER(0,2) ORG(3,4) MISC(4,5) | ORG(0,2) PER(4,5)             -> 5
# Correct: PER(0,2), PER(4,5)                                                -> 2
GOLD = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"]]
PRED = [["B-PER", "I-PER", "O", "B-ORG", "B-MISC"], ["B-ORG", "I-ORG", "O", "O", "B-PER"]]


def test_entity_metrics_hand_computed():
    m = entity_metrics(GOLD, PRED)
    # micro: P = 2/5 = 0.4, R = 2/4 = 0.5, F1 = 2*0.4*0.5/(0.4+0.5) = 0.4/0.9 = 0.4444...
    assert m["precision"] == pytest.approx(0.4)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(4 / 9)
    # per type: PER 2/2 correct; LOC missed; ORG 0 of 2 predicted, 1 gold; MISC spurious.
    assert m["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
        "ORG": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2},
    }
    # macro F1 over the 4 types in gold or pred: (0 + 0 + 0 + 1) / 4
    assert m["macro_f1"] == pytest.approx(0.25)
    # token accuracy: sentence 1 wrong at positions 3, 4; sentence 2 wrong at 2 -> 7/10
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["n_sentences"] == 2 and m["n_words"] == 10
    assert m["f1"] == pytest.approx(f1_score(GOLD, PRED))  # agrees with seqeval itself


def test_entity_metrics_are_plain_json_types():
    m = entity_metrics(GOLD, PRED)
    json.dumps(m)
    for key in ("precision", "recall", "f1", "macro_f1", "accuracy"):
        assert type(m[key]) is float
    assert type(m["n_words"]) is int and type(m["n_sentences"]) is int
    for row in m["per_type"].values():
        assert type(row["support"]) is int and type(row["f1"]) is float


def test_strict_differs_from_default_on_dangling_i():
    gold = [["O", "B-PER"]]
    pred = [["O", "I-PER"]]
    # Default (conlleval) mode reads "O I-PER" as a PER entity; strict IOB2 does not.
    assert entity_metrics(gold, pred)["f1"] == 1.0
    strict = entity_metrics(gold, pred, strict=True)
    assert strict["f1"] == 0.0 and strict["recall"] == 0.0
    assert strict["accuracy"] == 0.5  # token accuracy is the same in both modes


def test_strict_bioes_and_bilou():
    gold = [["B-PER", "E-PER", "O"]]
    pred = [["B-PER", "I-PER", "O"]]  # no E-: not an entity in strict BIOES
    assert entity_metrics(gold, pred, scheme="BIOES")["f1"] == 1.0
    assert entity_metrics(gold, pred, scheme="BIOES", strict=True)["f1"] == 0.0
    bilou_gold = [["B-PER", "L-PER", "U-LOC"]]
    bilou_pred = [["B-PER", "L-PER", "O"]]
    for strict in (False, True):
        m = entity_metrics(bilou_gold, bilou_pred, scheme="BILOU", strict=strict)
        # P = 1/1, R = 1/2, F1 = 2*1*0.5/1.5 = 2/3
        assert m["precision"] == 1.0 and m["recall"] == 0.5
        assert m["f1"] == pytest.approx(2 / 3)


def test_strict_iob1_is_refused():
    with pytest.raises(ValueError, match="strict mode needs IOB2 or BIOES"):
        entity_metrics([["I-PER"]], [["I-PER"]], scheme="IOB1", strict=True)
    # Default mode reads IOB1 fine: "I-PER B-PER" is two entities.
    m = entity_metrics([["I-PER", "B-PER"]], [["I-PER", "I-PER"]], scheme="IOB1")
    # gold PER(0,1) PER(1,2); pred PER(0,2): P = 0/1, R = 0/2
    assert m["f1"] == 0.0 and m["per_type"]["PER"]["support"] == 2


def test_length_mismatch_names_the_sentence():
    with pytest.raises(ValueError, match="true has 2 sentences but pred has 1"):
        entity_metrics(GOLD, PRED[:1])
    bad = [PRED[0], PRED[1][:-1]]
    with pytest.raises(ValueError, match="sentence 1: true has 5 tags but pred has 4"):
        entity_metrics(GOLD, bad)
    with pytest.raises(ValueError, match="sentence 1"):
        token_metrics(GOLD, bad)


def test_no_entities_scores_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = entity_metrics([["O", "O"]], [["O", "B-PER"]])
        assert m["f1"] == 0.0 and m["precision"] == 0.0 and m["recall"] == 0.0
        assert m["per_type"] == {"PER": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}}
        nothing = entity_metrics([["O", "O"]], [["O", "O"]])
        assert nothing["f1"] == 0.0 and nothing["macro_f1"] == 0.0
        assert nothing["per_type"] == {} and nothing["accuracy"] == 1.0
        strict = entity_metrics([["O"]], [["O"]], strict=True)
        assert strict["f1"] == 0.0
        empty = entity_metrics([], [])
        assert empty["n_sentences"] == 0 and empty["accuracy"] == 0.0


def test_hyphenated_types():
    gold = [["B-geo-loc", "I-geo-loc", "O", "B-other"]]
    pred = [["B-geo-loc", "I-geo-loc", "O", "O"]]
    m = entity_metrics(gold, pred)
    assert set(m["per_type"]) == {"geo-loc", "other"}
    assert m["per_type"]["geo-loc"]["f1"] == 1.0
    assert m["recall"] == 0.5


def test_invalid_tag_is_reported_with_position():
    with pytest.raises(InvalidTagError, match="predicted sentence 1, position 0: tag 'PER'"):
        entity_metrics([["O"], ["B-PER"]], [["O"], ["PER"]])


def test_format_entity_report():
    text = format_entity_report(entity_metrics(GOLD, PRED))
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.strip()}
    assert rows["PER"] == ["1.0000", "1.0000", "1.0000", "2"]
    assert rows["micro"] == ["avg", "0.4000", "0.5000", "0.4444", "4"]
    assert rows["macro"] == ["avg", "0.2500", "0.2500", "0.2500", "4"]
    assert rows["token"] == ["accuracy", "0.7000", "10"]
    # fixed width: every non-blank line has the same length
    assert len({len(line) for line in lines if line.strip()}) == 1


def test_token_metrics_hand_computed():
    true = [["B-PER", "I-PER", "O"], ["O", "B-LOC"]]
    pred = [["B-PER", "O", "O"], ["B-LOC", "B-LOC"]]
    m = token_metrics(true, pred)
    # labels O first, then by type, then B before I
    assert list(m["per_label"]) == ["O", "B-LOC", "B-PER", "I-PER"]
    # O: 1 correct of 2 predicted, 2 gold; B-LOC: 1 of 2 predicted, 1 gold
    assert m["per_label"]["O"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_label"]["B-LOC"]["precision"] == 0.5
    assert m["per_label"]["B-LOC"]["recall"] == 1.0
    assert m["per_label"]["B-LOC"]["f1"] == pytest.approx(2 / 3)  # 2*0.5*1/1.5
    assert m["per_label"]["B-PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert m["per_label"]["I-PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["accuracy"] == pytest.approx(3 / 5)
    # macro: P (0.5+0.5+1+0)/4, R (0.5+1+1+0)/4, F (0.5+2/3+1+0)/4
    assert m["macro_avg"]["precision"] == pytest.approx(0.5)
    assert m["macro_avg"]["recall"] == pytest.approx(0.625)
    assert m["macro_avg"]["f1"] == pytest.approx((0.5 + 2 / 3 + 1) / 4)
    # weighted by support 2,1,1,1: P (1+0.5+1+0)/5, R (1+1+1+0)/5, F (1+2/3+1+0)/5
    assert m["weighted_avg"]["precision"] == pytest.approx(0.5)
    assert m["weighted_avg"]["recall"] == pytest.approx(0.6)
    assert m["weighted_avg"]["f1"] == pytest.approx((2 + 2 / 3) / 5)
    assert m["weighted_avg"]["support"] == 5

    only = token_metrics(true, pred, labels=["B-PER", "I-PER", "B-MISC"])
    assert list(only["per_label"]) == ["B-PER", "I-PER", "B-MISC"]
    assert only["per_label"]["B-MISC"]["support"] == 0
    assert only["macro_avg"]["precision"] == pytest.approx(1 / 3)  # (1+0+0)/3
    assert only["accuracy"] == pytest.approx(3 / 5)  # always over all words


def test_token_report():
    text = token_report([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    lines = text.splitlines()
    rows = {line.rsplit(None, 4)[0].strip(): line.split()[-4:] for line in lines[2:] if line.strip()}
    assert rows["I-PER"] == ["0.0000", "0.0000", "0.0000", "1"]
    assert rows["O"] == ["0.5000", "1.0000", "0.6667", "1"]
    assert text.splitlines()[-3].split() == ["accuracy", "0.6667", "3"]
    assert lines[-1].startswith("weighted avg")
    assert len({len(line) for line in lines if line.strip()}) == 1
