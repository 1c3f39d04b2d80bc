"""Fixtures (helpers live in tests/helpers.py): the tiny BERT, the synthetic corpus, a trained run.

Session-scoped fixtures are shared by the whole run: a test that writes into one takes a copy
(`trained_run_copy`). Tests that train a model are marked `slow`; those using a training fixture get the
mark here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from .helpers import DDP_WORKER, make_sentences, tiny_recipe, write_conll, write_corpus, write_tiny_model_dir

# Tiny models on a 2-core machine: extra intra-op threads only spin and wait for each other, and
# multi-process tests would oversubscribe the cores.
torch.set_num_threads(1)

# Fixtures (here and in test modules) that train a model: every test using one is slow.
TRAINING_FIXTURES = {"trained_model_dir", "trained_run", "crf_run", "context_run", "lora_run", "ddp_setup"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT encoder with its tokenizer, saved like a pretrained checkpoint. Read-only."""
    return write_tiny_model_dir(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture()
def synthetic_corpus(tmp_path) -> dict[str, Path]:
    """train/validation/test CoNLL files of the synthetic corpus."""
    return write_corpus(tmp_path)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """`tiny_model_dir` fine-tuned by `run_training` on the synthetic corpus: a real run directory
    (labels in config.json, tokenizer, recipe.yaml with max_length=32) that tags the synthetic entities right.
    Read-only: a test that writes into a run directory uses `trained_run_copy`."""
    from nertune.training.run import run_training

    root = tmp_path_factory.mktemp("trained")
    recipe = tiny_recipe(
        tiny_model_dir, write_corpus(root), root / "run", "max_steps=80", "eval_strategy=no", "save_strategy=no"
    )
    metrics = run_training(recipe)
    assert metrics["test_f1"] == 1.0, metrics
    return root / "run"


@pytest.fixture()
def trained_run_copy(trained_model_dir, tmp_path) -> Path:
    """A copy of `trained_model_dir` this test may change."""
    return Path(shutil.copytree(trained_model_dir, tmp_path / "run"))


@pytest.fixture(scope="session")
def ddp_setup(tiny_model_dir, tmp_path_factory):
    """A no-dropout copy of the tiny BERT and a corpus whose eval splits do not fill the last batches."""
    tmp = tmp_path_factory.mktemp("ddp")
    model_dir = tmp / "tiny-no-dropout"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model_dir / "config.json").write_text(json.dumps(config))
    corpus = {
        "train": write_conll(tmp / "train.conll", make_sentences(96, seed=1)),
        "validation": write_conll(tmp / "dev.conll", make_sentences(37, seed=2)),  # 37, 41: not multiples of
        "test": write_conll(tmp / "test.conll", make_sentences(41, seed=3)),  # 2 processes x 8 per batch
    }
    (tmp / "worker.py").write_text(DDP_WORKER)
    (tmp / "recipe.yaml").write_text("report_to: none\n")  # the command line sets the rest
    return tmp, model_dir, corpus
