"""Calibration (temperature scaling, ECE, reliability diagram), CRF marginals, and per-type thresholds."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from nertune.cli import main
from nertune.errors import RequestError
from nertune.evaluation.calibration import (
    confidence_and_correct,
    expected_calibration_error,
    fit_temperature,
    word_posteriors_with_gold,
)
from nertune.heads.crf import CrfHead, LinearChainCRF, crf_marginals
from nertune.heads.linear import LinearHead
from nertune.inference.predictor import NerPredictor
from nertune.inference.thresholds import apply_thresholds, parse_thresholds

from .helpers import running_server

# -- CRF marginals


def _brute_force_marginals(emissions, start, transitions, end):
    length, n = emissions.shape
    marginals = torch.zeros(length, n, dtype=torch.float64)
    total = 0.0
    for path in itertools.product(range(n), repeat=length):
        score = start[path[0]] + end[path[-1]] + sum(emissions[t, tag] for t, tag in enumerate(path))
        score = score + sum(transitions[a, b] for a, b in itertools.pairwise(path))
        weight = float(torch.exp(torch.as_tensor(score, dtype=torch.float64)))
        total += weight
        for t, tag in enumerate(path):
            marginals[t, tag] += weight
    return marginals / total


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_crf_marginals_match_brute_force_enumeration(temperature):
    torch.manual_seed(1)
    emissions, start, transitions, end = torch.randn(4, 3), torch.randn(3), torch.randn(3, 3), torch.randn(3)
    marginals = crf_marginals(emissions, start, transitions, end, temperature)
    assert torch.allclose(marginals.sum(dim=1), torch.ones(4), atol=1e-6)
    scaled = (x / temperature for x in (emissions, start, transitions, end))
    expected = _brute_force_marginals(*scaled)
    assert torch.allclose(marginals.double(), expected, atol=1e-5)
    assert crf_marginals(torch.zeros(0, 3), start, transitions, end).shape == (0, 3)


# -- temperature scaling


def _over_confident_words(n_sentences=200, words=6, labels=4, sharpen=4.0, seed=0):
    """Word logits `sharpen` times too sharp: gold labels drawn from the softmax of the true logits."""
    rng = np.random.default_rng(seed)
    true_logits = torch.as_tensor(rng.normal(0, 1.5, (n_sentences, words, labels)), dtype=torch.float32)
    probabilities = true_logits.softmax(-1).numpy()
    gold = [[int(rng.choice(labels, p=p / p.sum())) for p in sentence] for sentence in probabilities]
    return [sentence * sharpen for sentence in true_logits], gold


def test_temperature_scaling_lowers_ece_of_an_over_confident_linear_head():
    logits, gold = _over_confident_words()
    head = LinearHead()
    ece_before = expected_calibration_error(*confidence_and_correct(*word_posteriors_with_gold(head, logits, gold)))
    temperature = fit_temperature(head, logits, gold)
    assert head.temperature is None  # fitting leaves the head as it was
    assert 2.5 < temperature < 6.0
    head.temperature = temperature
    posteriors, gold_ids = word_posteriors_with_gold(head, logits, gold)
    ece_after = expected_calibration_error(*confidence_and_correct(posteriors, gold_ids))
    assert ece_after < ece_before / 2
    # Scores change, decisions do not.
    assert torch.equal(posteriors.argmax(-1), torch.cat(logits).argmax(-1))


def test_temperature_scaling_of_the_crf_head_uses_its_marginals():
    labels = ["O", "B-PER", "I-PER", "B-LOC"]
    model = torch.nn.Module()
    model.crf = LinearChainCRF(labels)
    with torch.no_grad():
        model.crf.transitions.normal_(0, 0.5)
    logits, _ = _over_confident_words(n_sentences=120, labels=4)
    rng = np.random.default_rng(1)
    crf = model.crf
    true = [crf_marginals(x / 4, crf.start_transitions, crf.transitions, crf.end_transitions).detach() for x in logits]
    gold = [[int(rng.choice(4, p=(p / p.sum()).numpy())) for p in sentence.double()] for sentence in true]
    head = CrfHead().bind(model)
    before = expected_calibration_error(*confidence_and_correct(*word_posteriors_with_gold(head, logits, gold)))
    head.temperature = fit_temperature(head, logits, gold)
    after = expected_calibration_error(*confidence_and_correct(*word_posteriors_with_gold(head, logits, gold)))
    assert head.temperature > 2.0 and after < before / 2


def test_expected_calibration_error():
    confidences = np.array([0.8] * 10 + [0.95] * 4)
    correct = np.array([1] * 8 + [0] * 2 + [0] * 4)
    # Bin of 0.8: accuracy 0.8 (calibrated); bin of 0.95: accuracy 0, off by 0.95 for 4 of 14 words.
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.95 * 4 / 14)
    assert expected_calibration_error(np.array([]), np.array([])) == 0.0


# -- a trained model


def test_training_stores_a_temperature_and_the_predictor_applies_it_to_scores_only(trained_run_copy):
    config = json.loads((trained_run_copy / "config.json").read_text())
    calibration = config["nertune"]["calibration"]
    assert "nertune_calibration" not in config  # in the section, not a config attribute of its own
    assert set(calibration) == {"temperature", "ece_before", "ece_after"}
    assert calibration["temperature"] > 0 and calibration["ece_after"] <= calibration["ece_before"] + 1e-9
    assert json.loads((trained_run_copy / "metrics.json").read_text())["calibration"] == calibration

    sentences = [["john", "lives", "in", "paris", "."], ["today", "the", "a", "rome", "said"]]
    calibrated = NerPredictor.from_pretrained(trained_run_copy).predict_words(sentences)
    config["nertune"]["calibration"]["temperature"] = calibration["temperature"] * 4
    (trained_run_copy / "config.json").write_text(json.dumps(config))
    softer = NerPredictor.from_pretrained(trained_run_copy).predict_words(sentences)
    assert [[tag for tag, _ in s] for s in softer] == [[tag for tag, _ in s] for s in calibrated]
    pairs = [(a[1], b[1]) for x, y in zip(calibrated, softer) for a, b in zip(x, y)]
    assert all(soft < sharp for sharp, soft in pairs)


def test_evaluation_writes_ece_and_the_reliability_diagram(trained_run_copy):
    from nertune.evaluation.run import run_evaluation

    scores = run_evaluation(trained_run_copy, ["name=calibrated", "bootstrap=0"])
    out = trained_run_copy / "eval" / "calibrated"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["ece"] <= 1.0 and metrics["ece"] == scores["ece"]
    assert metrics["reliability_png"] == str(out / "reliability.png")
    assert (out / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- thresholds


def _result():
    entities = [
        {"type": "PER", "text": "john", "start": 0, "end": 1, "score": 0.9},
        {"type": "LOC", "text": "new york", "start": 3, "end": 5, "score": 0.55},
        {"type": "PER", "text": "mary", "start": 6, "end": 7, "score": 0.5},
    ]
    tags = ["B-PER", "O", "O", "B-LOC", "I-LOC", "O", "B-PER"]
    return {"entities": entities, "words": ["john", "x", "in", "new", "york", "and", "mary"], "tags": tags}


def test_thresholds_drop_entities_below_their_type_and_their_tags():
    (result,) = apply_thresholds([_result()], {"PER": 0.6}, "IOB2")
    assert [e["text"] for e in result["entities"]] == ["john", "new york"]
    assert result["tags"] == ["B-PER", "O", "O", "B-LOC", "I-LOC", "O", "O"]
    (result,) = apply_thresholds([_result()], {"PER": 0.5, "LOC": 0.6}, "IOB2")
    assert [e["text"] for e in result["entities"]] == ["john", "mary"]
    assert apply_thresholds([_result()], {}, "IOB2") == [_result()]


def test_bad_thresholds_are_errors_naming_the_known_types():
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert parse_thresholds(["PER=0.6", "LOC=0.25"], labels) == {"PER": 0.6, "LOC": 0.25}
    with pytest.raises(RequestError, match=r"no entity type 'ORG'; known types: \['LOC', 'PER'\]"):
        parse_thresholds(["ORG=0.5"], labels)
    with pytest.raises(RequestError, match="expected TYPE=SCORE"):
        parse_thresholds(["PER"], labels)
    with pytest.raises(RequestError, match="between 0 and 1"):
        parse_thresholds(["PER=1.5"], labels)
    with pytest.raises(RequestError, match="'high' is not a number"):
        parse_thresholds(["PER=high"], labels)


def test_predict_and_serve_apply_thresholds(trained_run_copy, tmp_path, capsys):
    import urllib.request

    trained_model_dir = trained_run_copy
    config = json.loads((trained_model_dir / "config.json").read_text())
    config["nertune"]["calibration"]["temperature"] = 50.0  # a sure tiny model: softer scores to threshold
    (trained_model_dir / "config.json").write_text(json.dumps(config))
    texts = tmp_path / "texts.txt"
    texts.write_text("john lives in paris .\nmary works at google in london today .\n")
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(trained_model_dir), "--input", str(texts), "--output", str(out)]) == 0
    plain = [json.loads(line) for line in out.read_text().splitlines()]
    assert "PER" in {e["type"] for r in plain for e in r["entities"]}
    assert all(e["score"] < 0.9 for r in plain for e in r["entities"])
    assert main(["predict", str(trained_model_dir), "--input", str(texts), "--output", str(out),
                 "--threshold", "PER=0.9"]) == 0  # fmt: skip
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [[e for e in r["entities"] if e["type"] != "PER"] for r in plain] == [r["entities"] for r in kept]
    assert main(["predict", str(trained_model_dir), "--input", str(texts), "--output", str(out),
                 "--threshold", "MISC=0.5"]) == 2  # fmt: skip
    assert "no entity type 'MISC'; known types: ['LOC', 'ORG', 'PER']" in capsys.readouterr().err

    with running_server(trained_model_dir, tmp_path / "serve.log", "--threshold", "PER=0.9") as url:
        request = urllib.request.Request(
            f"{url}/predict", data=json.dumps({"text": "john lives in paris ."}).encode(), method="POST"
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    assert [e["type"] for e in answer["entities"]] == ["LOC"]
    assert answer["tags"][0] == "O"
