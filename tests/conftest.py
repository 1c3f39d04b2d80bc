"""Fixtures (helpers live in tests/helpers.py): the tiny BERT, the synthetic corpus, a trained run.

Session-scoped fixtures are shared by the whole run: a test that writes into one takes a copy
(`trained_run_copy`). Tests that train a model are marked `slow`; those using a training fixture get the
mark here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from .helpers import tiny_recipe, write_corpus, write_tiny_model_dir

# Tiny models on a 2-core machine: extra intra-op threads only spin and wait for each other, and
# multi-process tests would oversubscribe the cores.
torch.set_num_threads(1)

# Fixtures (here and in test modules) that train a model: every test using one is slow.
TRAINING_FIXTURES = {"trained_model_dir", "trained_run", "crf_run", "context_run", "lora_run", "setup"}


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
    from nertune.train import run_training

    root = tmp_path_factory.mktemp("trained")
    recipe = tiny_recipe(tiny_model_dir, write_corpus(root), root / "run", "max_steps=80", "eval_strategy=no",
                         "save_strategy=no")
    metrics = run_training(recipe)
    assert metrics["test_f1"] == 1.0, metrics
    return root / "run"


@pytest.fixture()
def trained_run_copy(trained_model_dir, tmp_path) -> Path:
    """A copy of `trained_model_dir` this test may change."""
    return Path(shutil.copytree(trained_model_dir, tmp_path / "run"))
