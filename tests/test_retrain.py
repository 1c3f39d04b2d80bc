"""`nertune retrain` on real Trainer runs of the tiny BERT: a weak run continued on new (Label Studio) data is
promoted (`current` symlink); a candidate trained on wrong labels, or held to a negative tolerance, is not; the
report is written either way."""

from __future__ import annotations

import json

import pytest

from nertune.cli import main
from nertune.data.annotation_export import export_annotations
from nertune.schemes import tags_to_spans
from nertune.training.retrain import PROMOTED_LINK, promote, run_retrain
from nertune.training.run import run_training

from .helpers import make_sentences, tiny_recipe, write_conll, write_corpus

pytestmark = pytest.mark.slow

FAST = ("eval_strategy=no", "save_strategy=no")


@pytest.fixture(scope="module")
def weak_run(tiny_model_dir, tmp_path_factory):
    """A run trained for a few steps on a small corpus: room for new data to help."""
    root = tmp_path_factory.mktemp("retrain")
    (root / "data").mkdir()
    corpus = write_corpus(root / "data", (40, 40, 60))
    metrics = run_training(tiny_recipe(tiny_model_dir, corpus, root / "runs" / "v1", "max_steps=6", *FAST))
    return root / "runs" / "v1", metrics


def label_studio_export(path, sentences):
    """`sentences` as predictions, exported to Label Studio, every pre-annotation accepted by an annotator."""
    records = []
    for i, (tokens, tags) in enumerate(sentences):
        starts = [sum(len(t) + 1 for t in tokens[:k]) for k in range(len(tokens))]
        entities = [
            {"type": t, "start": starts[a], "end": starts[b - 1] + len(tokens[b - 1]), "score": 0.9}
            for t, a, b in tags_to_spans(tags)
        ]
        records.append({"text": " ".join(tokens), "entities": entities, "document_id": "", "sentence_id": i})
    pred = path.with_suffix(".pred.jsonl")
    pred.write_text("".join(json.dumps(r) + "\n" for r in records))
    export_annotations(pred, path, "label-studio")
    tasks = json.loads(path.read_text())
    for n, task in enumerate(tasks):
        task.update(id=n, annotations=[{"result": task["predictions"][0]["result"], "was_cancelled": False}])
    path.write_text(json.dumps(tasks))
    return path


def check_report(candidate, promoted: bool):
    comparison = json.loads((candidate / "comparison.json").read_text())
    assert comparison["promote"] is promoted
    assert set(comparison["per_type"]) >= {"PER", "LOC"}
    report = (candidate / "report.md").read_text()
    assert ("PROMOTED" if promoted else "NOT PROMOTED") in report and "| micro |" in report
    metrics = json.loads((candidate / "metrics.json").read_text())
    assert metrics["retrain"]["promote"] is promoted
    assert metrics["retrain"]["current_f1"] == comparison["current_f1"]
    assert metrics["retrain"]["candidate_f1"] == comparison["candidate_f1"]
    assert metrics["continued_from"]  # the continuation path ran (label_mismatch=extend, rehearsal)
    return comparison


def test_new_data_that_helps_is_promoted(weak_run, tmp_path):
    run, start_metrics = weak_run
    new = label_studio_export(tmp_path / "export.json", make_sentences(200, seed=11))
    candidate = tmp_path / "v2"
    argv = ["retrain", str(run), "--new", str(new), "--output-dir", str(candidate), "--promote-dir", str(tmp_path)]
    assert main([*argv, "max_steps=60", *FAST, "--bootstrap", "50"]) == 0
    comparison = check_report(candidate, promoted=True)
    assert comparison["candidate_f1"] > comparison["current_f1"], comparison
    assert comparison["current_f1"] == pytest.approx(start_metrics["test_f1"])  # the same fixed test set
    assert len(comparison["candidate_f1_ci95"]) == 2
    link = tmp_path / PROMOTED_LINK
    assert link.is_symlink() and link.resolve() == candidate.resolve()
    # The candidate's own data: the new sentences, the run's training split as rehearsal, its test split.
    assert sum(1 for _ in open(candidate / "data" / "new.jsonl")) == 200
    assert sum(1 for _ in open(candidate / "data" / "replay.jsonl")) == start_metrics["n_train_sentences"]
    assert sum(1 for _ in open(candidate / "data" / "test.jsonl")) == 60
    recipe = (candidate / "recipe.yaml").read_text()
    assert "replay_file" in recipe and "label_mismatch: extend" in recipe


def test_wrong_labels_are_refused_and_nothing_is_promoted(weak_run, tmp_path):
    run, _ = weak_run
    swap = {"B-PER": "B-LOC", "I-PER": "I-LOC", "B-LOC": "B-PER", "I-LOC": "I-PER"}
    wrong = [(tokens, [swap.get(t, t) for t in tags]) for tokens, tags in make_sentences(200, seed=12)]
    new = write_conll(tmp_path / "wrong.conll", wrong)
    candidate = tmp_path / "bad"
    comparison = run_retrain(
        run, [str(new)], ["max_steps=60", *FAST], output_dir=candidate, promote_dir=tmp_path, bootstrap=0
    )
    assert not comparison["promote"]
    assert any("per-type tolerance" in reason for reason in comparison["reasons"]), comparison["reasons"]
    check_report(candidate, promoted=False)
    assert not (tmp_path / PROMOTED_LINK).exists()


def test_a_negative_tolerance_refuses_even_a_good_candidate(weak_run, tmp_path):
    run, _ = weak_run
    new = write_conll(tmp_path / "new.conll", make_sentences(60, seed=13))
    argv = ["retrain", str(run), "--new", str(new), "--output-dir", str(tmp_path / "c"), "--tolerance", "-200"]
    assert main([*argv, "--promote-dir", str(tmp_path), "--bootstrap", "0", "max_steps=5", *FAST]) == 3
    comparison = check_report(tmp_path / "c", promoted=False)
    assert comparison["reasons"][0].startswith("micro F1 gains only") and "tolerance -200.0" in comparison["reasons"][0]
    assert not (tmp_path / PROMOTED_LINK).exists()


def test_retraining_the_current_link_promotes_beside_the_link(weak_run, tmp_path):
    """RUN given as the `current` link a server follows, in another dir than the runs: the link it came through is
    the one promoted, not a new `current` beside the run dirs."""
    run, _ = weak_run
    link = promote(run, tmp_path / "serving")
    new = write_conll(tmp_path / "new.conll", make_sentences(30, seed=15))
    argv = ["retrain", str(link), "--new", str(new), "--output-dir", str(tmp_path / "c"), "--bootstrap", "0"]
    assert main([*argv, "--tolerance", "100", "--per-type-tolerance", "100", "max_steps=3", *FAST]) == 0
    assert link.is_symlink() and link.resolve() == (tmp_path / "c").resolve()
    assert json.loads((tmp_path / "c" / "comparison.json").read_text())["promoted_link"] == str(link)
    assert not (run.parent / PROMOTED_LINK).exists()


def test_a_used_output_dir_is_refused_before_training(weak_run, tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("")
    new = write_conll(tmp_path / "new.conll", make_sentences(5, seed=14))
    assert main(["retrain", str(weak_run[0]), "--new", str(new), "--output-dir", str(tmp_path / "c")]) == 2
