"""Continued fine-tuning on real Trainer runs of the tiny BERT: new entity types added to a fine-tuned head
(`label_mismatch=extend`, linear and CRF), rehearsal, continuing a LoRA adapter, per-type F1 before/after."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from nertune.training.model_setup import build_model
from nertune.training.run import prepare_data, run_training

from .helpers import make_sentences, tiny_recipe, write_conll

pytestmark = pytest.mark.slow

OLD_ONLY = "data.label_map=ORG:O"  # the starting run never sees ORG


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return {
        name: write_conll(root / f"{name}.conll", make_sentences(n, seed=seed))
        for name, n, seed in (("train", 240, 1), ("validation", 40, 2), ("test", 40, 3))
    }


def start_run(tiny_model_dir, corpus, out, *extra):
    return run_training(
        tiny_recipe(
            tiny_model_dir, corpus, out, OLD_ONLY, "max_steps=80", "eval_strategy=no", "save_strategy=no", *extra
        )
    )


@pytest.fixture(scope="module")
def linear_start(tiny_model_dir, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("start") / "run"
    metrics = start_run(tiny_model_dir, corpus, out)
    assert "ORG" not in metrics["test_per_type"] and metrics["test_f1"] > 0.9, metrics
    return out, metrics


def saved_classifier(run_dir) -> dict[str, torch.Tensor]:
    weights = load_file(str(run_dir / "model.safetensors"))
    return {k: v for k, v in weights.items() if k.startswith("classifier.")}


def test_extend_keeps_every_old_label_row_bit_identical(linear_start, corpus, tmp_path):
    start, start_metrics = linear_start
    old = start_metrics["labels"]
    recipe = tiny_recipe(start, corpus, tmp_path / "x", "label_mismatch=extend")
    data = prepare_data(recipe, str(start))
    assert data.labels[: len(old)] == old and set(data.labels[len(old) :]) == {"B-ORG", "I-ORG"}
    model = build_model(recipe, str(start), data)
    assert model.config.id2label == dict(enumerate(data.labels)) and model.config.num_labels == len(data.labels)
    saved = saved_classifier(start)
    assert torch.equal(model.classifier.weight[: len(old)], saved["classifier.weight"])
    assert torch.equal(model.classifier.bias[: len(old)], saved["classifier.bias"])
    assert model.classifier.weight.shape[0] == len(data.labels)


def test_without_extend_new_types_are_an_error_naming_the_choices(linear_start, corpus, tmp_path):
    start, _ = linear_start
    with pytest.raises(ValueError, match="label_mismatch=extend"):
        run_training(tiny_recipe(start, corpus, tmp_path / "bad"))


def test_extend_trains_new_types_and_reports_old_types_before_and_after(linear_start, corpus, tmp_path):
    start, start_metrics = linear_start
    old = start_metrics["labels"]
    # Learning rate 0: training leaves every weight as loaded, so the old rows are the saved ones.
    frozen = run_training(
        tiny_recipe(
            start,
            corpus,
            tmp_path / "frozen",
            "label_mismatch=extend",
            "learning_rate=0",
            "max_steps=3",
            "eval_strategy=no",
            "save_strategy=no",
        )
    )
    assert torch.equal(
        saved_classifier(tmp_path / "frozen")["classifier.weight"][: len(old)],
        saved_classifier(start)["classifier.weight"],
    )
    assert frozen["old_types_f1_after"] == frozen["old_types_f1_before"]

    metrics = run_training(
        tiny_recipe(
            start,
            corpus,
            tmp_path / "cont",
            "label_mismatch=extend",
            "max_steps=60",
            "eval_strategy=no",
            "save_strategy=no",
        )
    )
    assert metrics["labels"][: len(old)] == old
    assert metrics["continued_from"] == str(start)
    assert sorted(metrics["old_types"]) == ["LOC", "PER"] and metrics["new_types"] == ["ORG"]
    # The starting model knew no ORG: scored on the new test split, it misses every ORG before training.
    assert metrics["test_per_type_before"]["ORG"]["f1"] == 0.0
    assert metrics["old_types_f1_before"] == pytest.approx(start_metrics["test_f1"])
    assert metrics["new_types_f1_after"] > 0.8 and metrics["old_types_f1_after"] > 0.8, metrics
    on_disk = json.loads((tmp_path / "cont" / "metrics.json").read_text())
    for key in (
        "continued_from",
        "old_types",
        "new_types",
        "test_per_type_before",
        "old_types_f1_before",
        "old_types_f1_after",
        "new_types_f1_after",
    ):
        assert key in on_disk, key
    # Trained: the old rows moved, by training only (the frozen run above kept them).
    assert not torch.equal(
        saved_classifier(tmp_path / "cont")["classifier.weight"][: len(old)],
        saved_classifier(start)["classifier.weight"],
    )


def test_rehearsal_adds_replayed_sentences_to_train_only(linear_start, corpus, tmp_path, caplog):
    start, _ = linear_start
    replay = write_conll(tmp_path / "old_train.jsonl.conll", make_sentences(100, seed=7))
    caplog.set_level(logging.INFO)
    recipe = tiny_recipe(
        start, corpus, tmp_path / "r", "label_mismatch=extend", f"data.replay_file={replay}", "data.replay_ratio=0.25"
    )
    data = prepare_data(recipe, str(start))
    assert len(data.splits["train"]) == 240 + 60
    assert (len(data.splits["validation"]), len(data.splits["test"])) == (40, 40)
    assert "rehearsal: 60 of 100 sentences" in caplog.text
    replayed = data.splits["train"].select(range(240, 300))
    assert min(replayed["sentence_id"]) > max(data.splits["train"].select(range(240))["sentence_id"])
    # Seeded: the same sentences every time.
    assert prepare_data(recipe, str(start)).splits["train"]["tokens"] == data.splits["train"]["tokens"]
    too_many = tiny_recipe(
        start, corpus, tmp_path / "r2", "label_mismatch=extend", f"data.replay_file={replay}", "data.replay_ratio=0.5"
    )
    with pytest.raises(ValueError, match="data.replay_ratio=0.5 asks for 120 sentences"):
        prepare_data(too_many, str(start))


def test_crf_extend_grows_transitions_with_zeros(tiny_model_dir, corpus, tmp_path):
    start = tmp_path / "crf-start"
    start_metrics = start_run(tiny_model_dir, corpus, start, "head=crf", "crf_learning_rate=0.05")
    old = start_metrics["labels"]
    n = len(old)
    recipe = tiny_recipe(
        start,
        corpus,
        tmp_path / "crf-cont",
        "head=crf",
        "label_mismatch=extend",
        "max_steps=40",
        "eval_strategy=no",
        "save_strategy=no",
    )
    data = prepare_data(recipe, str(start))
    model = build_model(recipe, str(start), data)
    saved = {
        k[len("crf.") :]: v for k, v in load_file(str(start / "model.safetensors")).items() if k.startswith("crf.")
    }
    assert model.crf.labels == data.labels and len(data.labels) == n + 2
    assert torch.equal(model.crf.transitions[:n, :n], saved["transitions"])
    assert torch.equal(model.crf.start_transitions[:n], saved["start_transitions"])
    assert not model.crf.transitions[n:].any() and not model.crf.transitions[:, n:].any()
    assert not model.crf.start_transitions[n:].any() and not model.crf.end_transitions[n:].any()
    assert torch.equal(model.classifier.weight[:n], saved_classifier(start)["classifier.weight"])
    metrics = run_training(recipe)
    assert metrics["new_types"] == ["ORG"] and metrics["new_types_f1_after"] > 0.5, metrics


def test_continue_a_lora_adapter_as_adapter_or_merged(tiny_model_dir, corpus, tmp_path):
    start = tmp_path / "lora-start"
    lora = ("lora.enabled=true", "lora.target_modules=query,value")
    start_metrics = run_training(
        tiny_recipe(tiny_model_dir, corpus, start, *lora, "max_steps=60", "eval_strategy=no", "save_strategy=no")
    )
    assert (start / "adapter_config.json").is_file()
    # The same adapter trains further: its scores before training are the adapter run's.
    again = run_training(
        tiny_recipe(
            start, corpus, tmp_path / "lora-again", *lora, "max_steps=10", "eval_strategy=no", "save_strategy=no"
        )
    )
    assert again["old_types_f1_before"] == pytest.approx(start_metrics["test_f1"])
    assert again["trainable_params"] == start_metrics["trainable_params"]
    assert (tmp_path / "lora-again" / "adapter_config.json").is_file()
    info = json.loads((tmp_path / "lora-again" / "nertune_adapter.json").read_text())
    assert info["base_model"] == str(tiny_model_dir)  # the base model, not the adapter it continued
    # lora.enabled=false: merged into the base, then trained in full; a plain model dir comes out.
    merged = run_training(
        tiny_recipe(start, corpus, tmp_path / "merged", "max_steps=10", "eval_strategy=no", "save_strategy=no")
    )
    assert merged["old_types_f1_before"] == pytest.approx(start_metrics["test_f1"])
    assert merged["trainable_percent"] == 100.0
    assert (tmp_path / "merged" / "config.json").is_file()
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
