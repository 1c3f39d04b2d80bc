"""Shared fixtures: a tiny randomly initialised BERT (config + WordPiece vocab written here) and a
small synthetic corpus the tiny model can learn in seconds."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# Tiny models on a 2-core machine: extra intra-op threads only spin and wait for each other (measured:
# 60 tiny Trainer steps took 69 s with 2 threads under load vs 1.5 s with 1), and multi-process tests
# would oversubscribe the cores.
torch.set_num_threads(1)

PERSONS = ["john", "mary", "alice", "bob", "carol", "dave", "erin", "frank"]
CITIES = ["paris", "london", "berlin", "rome", "madrid", "oslo"]
ORGS = ["google", "nasa", "unicef", "siemens"]
FILLERS = ["lives", "in", "works", "at", "visited", "the", "a", "and", "said", "today", "."]
WORDPIECES = ["##s", "##ian", "##ing", "##ed"]


def make_sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Sentences whose entity types follow from the word itself: learnable by a tiny model."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        person, city, org = rng.choice(PERSONS), rng.choice(CITIES), rng.choice(ORGS)
        template = rng.randrange(3)
        if template == 0:
            tokens = [person, "lives", "in", city, "."]
            tags = ["B-PER", "O", "O", "B-LOC", "O"]
        elif template == 1:
            tokens = [person, "works", "at", org, "in", city, "today", "."]
            tags = ["B-PER", "O", "O", "B-ORG", "O", "B-LOC", "O", "O"]
        else:
            other = rng.choice([p for p in PERSONS if p != person])
            tokens = [person, other, "visited", "the", city, "."]
            tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
        sentences.append((tokens, tags))
    return sentences


def write_conll(path: Path, sentences, delimiter: str = "\t", docstart: bool = False) -> Path:
    lines = []
    if docstart:
        lines += ["-DOCSTART-" + delimiter + "O", ""]
    for tokens, tags in sentences:
        lines += [f"{t}{delimiter}{g}" for t, g in zip(tokens, tags)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_recipe(model_dir, corpus, output_dir, *extra: str):
    """A recipe that trains the tiny BERT on a synthetic corpus in seconds; `extra` overrides win."""
    from nertune.config import load_recipe

    return load_recipe(None, [
        f"model_name_or_path={model_dir}", f"output_dir={output_dir}",
        f"data.train_file={corpus['train']}", f"data.validation_file={corpus['validation']}",
        f"data.test_file={corpus['test']}",
        "learning_rate=5e-3", "num_train_epochs=6", "per_device_train_batch_size=16", "warmup_ratio=0.0",
        "max_length=32", "window_overlap=8", "logging_steps=5", "report_to=none", "precision=fp32",
        "save_total_limit=1", *extra,
    ])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT encoder with its tokenizer, saved like a pretrained checkpoint."""
    from transformers import BertConfig, BertModel, BertTokenizer

    directory = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + PERSONS + CITIES + ORGS + FILLERS + WORDPIECES
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(directory)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture()
def synthetic_corpus(tmp_path) -> dict[str, Path]:
    """train/validation/test CoNLL files of the synthetic corpus."""
    return {
        "train": write_conll(tmp_path / "train.conll", make_sentences(240, seed=1)),
        "validation": write_conll(tmp_path / "dev.conll", make_sentences(40, seed=2)),
        "test": write_conll(tmp_path / "test.conll", make_sentences(40, seed=3)),
    }


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """`tiny_model_dir` fine-tuned by `run_training` on the synthetic corpus: a real run directory
    (labels in config.json, tokenizer, recipe.yaml with max_length=32) that tags the synthetic entities right."""
    from nertune.config import load_recipe
    from nertune.train import run_training

    root = tmp_path_factory.mktemp("trained")
    files = {name: write_conll(root / f"{name}.conll", make_sentences(n, seed=seed))
             for name, n, seed in (("train", 240, 1), ("validation", 40, 2), ("test", 40, 3))}
    recipe = load_recipe(None, [
        f"model_name_or_path={tiny_model_dir}", f"output_dir={root / 'run'}",
        f"data.train_file={files['train']}", f"data.validation_file={files['validation']}",
        f"data.test_file={files['test']}", "max_steps=80", "learning_rate=5e-3", "warmup_ratio=0",
        "per_device_train_batch_size=16", "eval_strategy=no", "save_strategy=no", "report_to=none",
        "precision=fp32", "max_length=32", "window_overlap=8",
    ])
    metrics = run_training(recipe)
    assert metrics["test_f1"] == 1.0, metrics
    return root / "run"


@contextlib.contextmanager
def running_server(model_dir: Path, log_path: Path, *options: str) -> Iterator[str]:
    """A real `nertune serve MODEL_DIR` subprocess on a free loopback port: yields its base URL, stops it
    after, and fails the test if the server logged a traceback."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}  # a tiny model on a shared CPU
    command = [sys.executable, "-m", "nertune.cli", "serve", str(model_dir), "--port", str(port), *options]
    # Output to a file, not a pipe: nobody reads a pipe while the tests run, and a full one blocks the server.
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not up after 120 s:\n{log_path.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()
