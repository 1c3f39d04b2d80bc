"""A real Trainer run on a tiny BERT: it learns, writes a reproducible run dir, and reloads identically."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from nertune.recipe.schema import load_recipe
from nertune.training.run import run_training

from .helpers import tiny_recipe, write_conll


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    from .helpers import make_sentences

    test_sentences = make_sentences(40, seed=3)
    # One 150-word sentence, far longer than max_length=32: it must be windowed, never truncated.
    long_sentence = make_sentences(25, seed=4)
    test_sentences.append(([w for t, _ in long_sentence for w in t], [g for _, tags in long_sentence for g in tags]))
    corpus = {
        "train": write_conll(tmp / "train.conll", make_sentences(240, seed=1)),
        "validation": write_conll(tmp / "dev.conll", make_sentences(40, seed=2)),
        "test": write_conll(tmp / "test.conll", test_sentences),
    }
    recipe = tiny_recipe(tiny_model_dir, corpus, tmp / "out")
    metrics = run_training(recipe)
    return tmp / "out", metrics, corpus


def test_training_learns_and_reports(trained_run):
    out, metrics, _ = trained_run
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < losses[0] * 0.5, losses
    assert metrics["test_f1"] > 0.8 and metrics["validation_f1"] > 0.8
    on_disk = json.loads((out / "metrics.json").read_text())
    for key in (
        "validation_f1",
        "test_f1",
        "test_precision",
        "test_recall",
        "train_runtime_s",
        "train_samples_per_second",
        "n_test_words_in_input",
        "n_test_words_predicted",
    ):
        assert key in on_disk, key
    assert on_disk["n_test_words_in_input"] == on_disk["n_test_words_predicted"] > 0
    assert set(on_disk["test_per_type"]) == {"PER", "LOC", "ORG"}
    report = (out / "report.txt").read_text()
    assert "micro avg" in report and "B-PER" in report  # entity-level and token-level tables


def test_run_dir_is_reproducible_and_loadable(trained_run, tiny_model_dir):
    from transformers import AutoModelForTokenClassification, pipeline

    out, metrics, _ = trained_run
    assert not (out / "config.yaml").exists()  # the recipe is not mistaken for HF's config.json
    resolved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert resolved["learning_rate"] == pytest.approx(5e-3) and resolved["model_name_or_path"] == str(tiny_model_dir)
    assert load_recipe(out / "recipe.yaml").output_dir == str(out)
    section = json.loads((out / "config.json").read_text())["nertune"]
    assert (section["head"], section["scheme"], section["max_length"], section["window_overlap"]) == (
        "linear",
        "IOB2",
        32,
        8,
    )
    assert (section["adapter"], section["base_model"], section["context_size"]) == (False, str(tiny_model_dir), 0)
    model = AutoModelForTokenClassification.from_pretrained(out)
    assert model.config.id2label[0] == "O"
    assert model.config.id2label == {i: label for i, label in enumerate(metrics["labels"])}
    ner = pipeline("token-classification", model=str(out), aggregation_strategy="first", device=-1)
    entities = ner("mary lives in paris .")
    assert {(e["entity_group"], e["word"]) for e in entities} == {("PER", "mary"), ("LOC", "paris")}


def test_word_level_predictions_file_has_every_word(trained_run):
    out, metrics, corpus = trained_run
    gold_lines = [line for line in corpus["test"].read_text().splitlines() if line.strip()]
    predicted = [line for line in (out / "test_predictions.conll").read_text().splitlines() if line.strip()]
    assert len(predicted) == len(gold_lines) == metrics["n_test_words_in_input"]
    assert all(len(line.split("\t")) == 3 for line in predicted)
    # The long sentence (the last one) is predicted word for word, and mostly right. It is 25 sentences run
    # together, a context the tiny model never trained on: 0.90 of its words right with the label-prior start
    # (0.94 with a zero bias); a window-merging error would misplace whole windows of labels.
    last = (out / "test_predictions.conll").read_text().rstrip("\n").split("\n\n")[-1].splitlines()
    assert len(last) > 100
    assert sum(g == p for _, g, p in (line.split("\t") for line in last)) / len(last) > 0.85


def test_save_reload_gives_same_predictions(trained_run):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    out, _, _ = trained_run
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer([["bob", "works", "at", "nasa"]], is_split_into_words=True, return_tensors="pt")
    first = AutoModelForTokenClassification.from_pretrained(out).eval()
    second = AutoModelForTokenClassification.from_pretrained(out).eval()
    with torch.inference_mode():
        assert torch.equal(first(**batch).logits, second(**batch).logits)


def test_continue_fine_tuning_reconciles_or_rejects_labels(trained_run, tmp_path):
    out, metrics, corpus = trained_run
    # Same label set: the head is kept and the label order stays the model's.
    again = run_training(tiny_recipe(out, corpus, tmp_path / "again", "num_train_epochs=1"))
    assert again["labels"] == metrics["labels"]
    # A type the model never saw: a clear error before training, or an explicit fresh head.
    new = write_conll(tmp_path / "new.conll", [(["mary", "sings"], ["B-PER", "B-SONG"])] * 20)
    new_corpus = {"train": new, "validation": new, "test": new}
    with pytest.raises(ValueError, match="SONG"):
        run_training(tiny_recipe(out, new_corpus, tmp_path / "bad"))
    reset = run_training(tiny_recipe(out, new_corpus, tmp_path / "reset", "label_mismatch=reset", "max_steps=2"))
    assert "B-SONG" in reset["labels"]


@pytest.mark.slow
def test_resume_from_latest_checkpoint(tiny_model_dir, synthetic_corpus, tmp_path):
    recipe = tiny_recipe(
        tiny_model_dir,
        synthetic_corpus,
        tmp_path / "r",
        "max_steps=6",
        "eval_strategy=steps",
        "eval_steps=3",
        "save_strategy=steps",
        "save_steps=3",
        "save_total_limit=3",
    )
    run_training(recipe)
    assert (tmp_path / "r" / "checkpoints" / "checkpoint-6").is_dir()
    resumed = tiny_recipe(
        tiny_model_dir,
        synthetic_corpus,
        tmp_path / "r",
        "max_steps=9",
        "eval_strategy=steps",
        "eval_steps=3",
        "save_strategy=steps",
        "save_steps=3",
        "resume_from_checkpoint=latest",
    )
    run_training(resumed)
    state = json.loads((tmp_path / "r" / "trainer_state.json").read_text())
    assert state["global_step"] == 9


def test_missing_model_path_fails_before_training(synthetic_corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_training(tiny_recipe(tmp_path / "nope", synthetic_corpus, tmp_path / "o"))


def test_evaluate_model_dir_on_held_out_split_and_on_another_file(trained_run, tmp_path):
    from nertune.evaluation.run import run_evaluation
    from nertune.schemes import convert_tags

    from .helpers import make_sentences

    out, metrics, _ = trained_run
    scores = run_evaluation(out)  # the run's own test split, from its saved recipe.yaml
    assert scores["f1"] == pytest.approx(metrics["test_f1"])
    assert (out / "eval" / "test" / "metrics.json").is_file()
    # Another file, written in IOB1: detected and converted to the model's IOB2 on the fly.
    iob1 = [(tokens, convert_tags(tags, "IOB2", "IOB1")) for tokens, tags in make_sentences(30, seed=9)]
    assert any(tag.startswith("I-") for _, tags in iob1 for tag in tags[:1])
    other = write_conll(tmp_path / "other.conll", iob1)
    scores = run_evaluation(out, [f"data.test_file={other}", "strict_metrics=true"], name="other")
    assert scores["source_scheme"] == "IOB1"
    assert scores["n_words_in_input"] == scores["n_words_predicted"] > 0 and scores["f1"] > 0.8
    assert (out / "eval" / "other" / "report.txt").read_text().count("micro avg") == 1
    unknown = write_conll(tmp_path / "unknown.conll", [(["mary", "sings"], ["B-PER", "B-SONG"])])
    with pytest.raises(ValueError, match="SONG"):
        run_evaluation(out, [f"data.test_file={unknown}"])


def test_a_run_dir_describes_itself_in_config_json(trained_run, tmp_path):
    """Predicting reads config.json's `nertune` section, never recipe.yaml (the record of the run, which
    evaluation reads for its data)."""
    import shutil

    from nertune.evaluation.run import run_evaluation
    from nertune.inference.predictor import NerPredictor
    from nertune.model.rundir import RunDir

    out, metrics, _ = trained_run
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir, ignore=shutil.ignore_patterns("checkpoints", "eval"))
    config = json.loads((run_dir / "config.json").read_text())
    config["nertune"].update(max_length=16, window_overlap=4)  # not the recipe's: proof it was read
    (run_dir / "config.json").write_text(json.dumps(config))
    recipe = (run_dir / "recipe.yaml").read_text()
    (run_dir / "recipe.yaml").write_text("max_length: [not, a, recipe]\n")  # predicting must not read it
    run = RunDir.load(run_dir)
    assert (run.max_length, run.window_overlap) == (16, 4)
    assert (run.head_name, run.scheme, run.is_adapter, run.labels) == ("linear", "IOB2", False, metrics["labels"])
    predictor = NerPredictor.from_pretrained(run_dir, device="cpu", precision="fp32")
    assert (predictor.max_length, predictor.window_overlap) == (16, 4)
    assert [tag for tag, _ in predictor.predict_words([["mary", "lives", "in", "paris", "."]])[0]] == [
        "B-PER",
        "O",
        "O",
        "B-LOC",
        "O",
    ]
    (run_dir / "recipe.yaml").write_text(recipe)
    scores = run_evaluation(run_dir, bootstrap=0)
    assert scores["n_words_in_input"] == scores["n_words_predicted"] == metrics["n_test_words_in_input"]
    assert scores["f1"] > 0.8


@pytest.mark.slow
def test_bioes_training_with_all_subtokens_labelled(tiny_model_dir, synthetic_corpus, tmp_path):
    from nertune.schemes import is_valid_sequence

    metrics = run_training(
        tiny_recipe(
            tiny_model_dir,
            synthetic_corpus,
            tmp_path / "b",
            "data.train_scheme=BIOES",
            "label_all_subtokens=true",
            "num_train_epochs=4",
            "eval_strategy=no",
            "save_strategy=no",
        )
    )
    assert {"S-PER", "E-PER", "S-LOC"} <= set(metrics["labels"])
    blocks = (tmp_path / "b" / "test_predictions.conll").read_text().strip().split("\n\n")
    predicted = [[line.split("\t")[2] for line in block.splitlines()] for block in blocks]
    assert len(predicted) == 40 and all(is_valid_sequence(tags, "BIOES") for tags in predicted)
    assert metrics["test_f1"] > 0.5


@pytest.mark.slow
def test_kept_model_is_the_best_validation_checkpoint_and_curves_are_drawn(tiny_model_dir, synthetic_corpus, tmp_path):
    from nertune.evaluation.run import run_evaluation

    out = tmp_path / "best"
    metrics = run_training(
        tiny_recipe(
            tiny_model_dir, synthetic_corpus, out, "num_train_epochs=4", "learning_rate=2e-3", "save_total_limit=1"
        )
    )
    state = json.loads((out / "trainer_state.json").read_text())
    eval_f1 = [h["eval_f1"] for h in state["log_history"] if "eval_f1" in h]
    assert len(eval_f1) == 4 and state["best_metric"] == max(eval_f1)
    # The model written to the run dir scores the best F1 on validation, wherever that epoch was.
    assert metrics["validation_f1"] == pytest.approx(state["best_metric"])
    assert run_evaluation(out, split="validation")["f1"] == pytest.approx(state["best_metric"])
    png = (out / "learning_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


@pytest.mark.slow
def test_early_stopping_stops_when_validation_f1_cannot_improve(tiny_model_dir, synthetic_corpus, tmp_path):
    out = tmp_path / "early"
    # Learning rate 0: validation F1 stays where the first epoch put it, so patience 1 ends the run at epoch 2.
    run_training(
        tiny_recipe(
            tiny_model_dir, synthetic_corpus, out, "learning_rate=0", "num_train_epochs=6", "early_stopping_patience=1"
        )
    )
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["epoch"] == 2.0 and state["num_train_epochs"] == 6


@pytest.mark.slow
def test_report_to_auto_logs_tensorboard_under_the_run_dir(tiny_model_dir, synthetic_corpus, tmp_path, caplog):
    import importlib.util
    import logging

    caplog.set_level(logging.INFO)
    out = tmp_path / "tb"
    run_training(
        tiny_recipe(
            tiny_model_dir,
            synthetic_corpus,
            out,
            "report_to=auto",
            "max_steps=4",
            "logging_steps=1",
            "eval_strategy=no",
            "save_strategy=no",
        )
    )
    assert not (out / "checkpoints" / "runs").exists()  # not the Trainer's default place
    if importlib.util.find_spec("tensorboard") is None:
        assert "tensorboard is not installed" in caplog.text
        assert not (out / "tensorboard").exists()
    else:
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))
