"""The one helper module of the tests: the synthetic corpus, the tiny BERT, the tiny recipe and a real
`nertune serve` subprocess. Fixtures built on them live in conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

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


def tiny_overrides(model_dir, corpus, output_dir, *extra: str) -> list[str]:
    """`key=value` overrides that train the tiny BERT on a synthetic corpus in seconds; `extra` ones win."""
    return [
        f"model_name_or_path={model_dir}",
        f"output_dir={output_dir}",
        f"data.train_file={corpus['train']}",
        f"data.validation_file={corpus['validation']}",
        f"data.test_file={corpus['test']}",
        "learning_rate=5e-3",
        "num_train_epochs=6",
        "per_device_train_batch_size=16",
        "warmup_ratio=0.0",
        "max_length=32",
        "window_overlap=8",
        "logging_steps=5",
        "report_to=none",
        "precision=fp32",
        "save_total_limit=1",
        *extra,
    ]


def tiny_recipe(model_dir, corpus, output_dir, *extra: str):
    """The recipe of `tiny_overrides`, loaded."""
    from nertune.recipe.schema import load_recipe

    return load_recipe(None, tiny_overrides(model_dir, corpus, output_dir, *extra))


TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + PERSONS + CITIES + ORGS + FILLERS + WORDPIECES


def build_tiny_tokenizer():
    """A lower-casing WordPiece tokenizer over the synthetic corpus' words."""
    from transformers import BertTokenizer

    return BertTokenizer(vocab={w: i for i, w in enumerate(TINY_VOCAB)}, do_lower_case=True)


def build_tiny_model(seed: int = 0, vocab_size: int = len(TINY_VOCAB), max_position_embeddings: int = 128):
    """A 2-layer, 32-wide randomly initialised BERT encoder (by default for `build_tiny_tokenizer`'s vocabulary)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_position_embeddings,
    )
    torch.manual_seed(seed)
    return BertModel(config)


def write_tiny_model_dir(directory: Path) -> Path:
    """The tiny BERT and its tokenizer saved like a pretrained checkpoint."""
    build_tiny_tokenizer().save_pretrained(directory)
    build_tiny_model().save_pretrained(directory)
    return directory


def write_corpus(directory: Path, sizes: tuple[int, int, int] = (240, 40, 40)) -> dict[str, Path]:
    """train/validation/test CoNLL files of the synthetic corpus (seeds 1, 2, 3)."""
    return {
        name: write_conll(directory / f"{name}.conll", make_sentences(n, seed=seed))
        for name, n, seed in zip(("train", "validation", "test"), sizes, (1, 2, 3))
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(model_dir: Path, log_path: Path, *options: str, startup_timeout_s: float = 120) -> Iterator[str]:
    """A real `nertune serve MODEL_DIR` subprocess on a free loopback port, its output in `log_path`: yields its
    base URL once `/health` answers, stops it after (SIGTERM), and fails the test if the server logged a
    traceback."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "nertune.cli", "serve", str(model_dir), "--port", str(port), *options]
    # A file, not a pipe: nobody reads a pipe while the server runs, and a full one would block it.
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env())
        try:
            deadline = time.monotonic() + startup_timeout_s
            while True:
                assert process.poll() is None, f"the server exited ({process.returncode}):\n{log_path.read_text()}"
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"no answer within {startup_timeout_s} s:\n{log_path.read_text()}"
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


def server_process(url: str):
    """The psutil process of the `running_server` at `url` (a child of this one)."""
    import psutil

    port = url.rsplit(":", 1)[1]
    (process,) = [p for p in psutil.Process().children() if port in p.cmdline()]
    return process


def scrape(url: str, **kwargs) -> dict[tuple[str, tuple], float]:
    """The server's /metrics parsed by prometheus_client: {(sample name, sorted labels): value}."""
    import httpx
    from prometheus_client import parser

    response = httpx.get(f"{url}/metrics", timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(response.text)
        for sample in family.samples
    }


# Data files for the tests of the nertune.data package (tests/test_data_*.py).


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def data_cfg(**overrides):
    """The recipe's `data` section: config.DataConfig's defaults with `overrides`."""
    from nertune.recipe.schema import DataConfig

    return DataConfig(**overrides)


def many_sentences(n: int, types=("PER", "LOC")) -> str:
    """A CoNLL text of n sentences; every sentence has one entity of each type."""
    blocks = []
    for i in range(n):
        lines = [f"w{i}\tO"] + [f"{t.lower()}{i}\tB-{t}" for t in types]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# Real multi-process launches: two CPU processes over gloo.

# Runs nertune's CLI under a launcher; every process also saves its final weights to compare the ranks.
DDP_WORKER = textwrap.dedent("""
    import sys
    import torch
    import nertune.training.run
    from nertune.cli import main

    class DumpingTrainer(nertune.training.run.NerTrainer):
        def train(self, *args, **kwargs):
            result = super().train(*args, **kwargs)
            model = self.accelerator.unwrap_model(self.model)
            torch.save({n: p.detach().cpu() for n, p in model.state_dict().items()},
                       f"{sys.argv[1]}/rank{self.args.process_index}.pt")
            return result

    nertune.training.run.NerTrainer = DumpingTrainer
    sys.exit(main(["train", *sys.argv[2:]]))
""")


def ddp_overrides(model_dir, corpus, output_dir, *extra: str) -> list[str]:
    return tiny_overrides(
        model_dir,
        corpus,
        output_dir,
        "num_train_epochs=2",
        "global_batch_size=16",
        "per_device_eval_batch_size=8",
        "logging_steps=2",
        "save_strategy=no",
        *extra,
    )


def subprocess_env() -> dict[str, str]:
    """The environment of a nertune subprocess: this checkout's src first, offline, one thread per process (a
    tiny model on a shared CPU)."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


def launch_module(launcher: list[str], script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *launcher, str(script), *args],
        env=subprocess_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def two_process_launcher() -> list[str]:
    """`accelerate launch` of two CPU processes with the project's multi-GPU config (python -m arguments)."""
    config = str(REPO / "recipes/accelerate/multi-gpu.yaml")
    return ["accelerate.commands.launch", "--config_file", config, "--num_processes", "2",
            "--main_process_port", str(free_port())]  # fmt: skip


def ddp_launch(tmp: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    result = launch_module(two_process_launcher(), tmp / "worker.py", str(tmp), str(tmp / "recipe.yaml"), *overrides)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def log_history(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "trainer_state.json").read_text())["log_history"]


LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def random_head_model(directory, tiny_model_dir, labels, seed=0):
    """The tiny encoder with a random classifier head, scaled up so its argmax varies from word to word."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_model_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.nn.init.normal_(model.classifier.weight, std=1.0)
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(directory)
    return directory


def cache_snapshot(cache: Path, repo_id: str, commit: str, source: Path, ref: str | None = "main") -> Path:
    """`source` as huggingface_hub lays out a downloaded snapshot: blobs, relative links to them, refs/<ref>."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for file in sorted(source.rglob("*")):
        if file.is_file() and "checkpoints" not in file.parts:
            rel = file.relative_to(source)
            blob = repo / "blobs" / f"{commit[:8]}-{rel.as_posix().replace('/', '-')}"
            shutil.copy(file, blob)
            (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
            (snapshot / rel).symlink_to(os.path.relpath(blob, (snapshot / rel).parent))
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


class OpenCounter:
    """Counts the files opened (audit "open" events: C-level opens too) under some directories while
    `counting()`; `counts` maps each opened path to its count."""

    def __init__(self) -> None:
        self.directories: tuple[str, ...] = ()
        self.counts: dict[Path, int] = {}
        sys.addaudithook(self._hook)  # audit hooks cannot be removed: it stays, idle, for the rest of the session

    def _hook(self, event: str, args: tuple) -> None:
        if self.directories and event == "open" and isinstance(args[0], (str, bytes, Path)):
            path = Path(os.fsdecode(args[0])).resolve()
            if str(path).startswith(self.directories):
                self.counts[path] = self.counts.get(path, 0) + 1

    @contextlib.contextmanager
    def counting(self, *directories: Path) -> Iterator[dict[Path, int]]:
        self.counts = {}
        self.directories = tuple(str(Path(d).resolve()) + os.sep for d in directories)
        try:
            yield self.counts
        finally:
            self.directories = ()


_OPEN_COUNTER: OpenCounter | None = None


def open_counter() -> OpenCounter:
    """The session's one `OpenCounter` (each would add an audit hook for good)."""
    global _OPEN_COUNTER
    if _OPEN_COUNTER is None:
        _OPEN_COUNTER = OpenCounter()
    return _OPEN_COUNTER
