"""`make bench`, model FLOPs utilisation: achieved FLOP/s of training and inference over a matmul peak measured
in the same run, for the quickstart model and for a randomly initialised bert-base-size encoder.

FLOPs per sub-token are those of the encoder's dense layers (12 x layers x hidden^2 parameters): 2 per parameter
forward, 6 forward and backward. Attention scores, embeddings and the head are left out, as in the usual MFU
convention for short sequences, so MFU slightly understates the work done.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from nertune.recipe.schema import Recipe

logger = logging.getLogger(__name__)


def measure_matmul_peak(dtype: torch.dtype, device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """Achieved FLOP/s of a square matmul: the denominator of MFU, measured on this machine now (best of 3)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b
    best = 0.0
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - started))
    return best


def dense_parameters(config) -> int:
    """Parameters of the encoder's dense layers: attention projections (4 h^2) and feed-forward (2 h x ffn)."""
    ffn = getattr(config, "intermediate_size", 4 * config.hidden_size)
    return config.num_hidden_layers * (4 * config.hidden_size**2 + 2 * config.hidden_size * ffn)


def mfu(config, tokens_per_second: float, peak_flops: float, training: bool = True) -> float:
    """The share of `peak_flops` that `tokens_per_second` sub-tokens of training (or inference) amount to."""
    return (6 if training else 2) * dense_parameters(config) * tokens_per_second / peak_flops


def write_random_bert_base(directory: Path, tokenizer_dir: str) -> Path:
    """A randomly initialised `BertConfig()` (bert-base: 12 layers, hidden 768) with the tokenizer of
    `tokenizer_dir` and its vocabulary, saved like a pretrained checkpoint."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if not (directory / "config.json").is_file():
        torch.manual_seed(0)
        BertModel(BertConfig(vocab_size=len(tokenizer))).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    return directory


def bench_bert_base(recipe: Recipe, splits, labels: list[str], out: Path, peak: float, steps: int) -> dict:
    """Training samples/s, tokens/s and MFU of the project and of the plain Trainer on a random bert-base
    encoder (the recipe's data and tokenizer: real sentence lengths), `steps` optimizer steps each."""
    from transformers import AutoConfig

    from bench.run import train_baseline, train_project, train_tokens_per_sample
    from nertune.model.loading import resolve_model_path

    model_dir = write_random_bert_base(out / "bert-base-random", resolve_model_path(recipe.model_name_or_path))
    recipe = recipe.model_copy(update={"model_name_or_path": str(model_dir), "max_steps": steps, "learning_rate": 5e-5})
    config = AutoConfig.from_pretrained(model_dir)
    tokens_per_sample = train_tokens_per_sample(str(model_dir), splits)
    baseline = train_baseline(recipe, splits, labels, out / "bert-base-baseline", score_splits=())
    project = train_project(recipe.model_copy(update={"output_dir": str(out / "bert-base-project")}))
    result = {}
    for side, run in (("project", project), ("baseline", baseline)):
        tokens = tokens_per_sample * run["train_samples_per_second"]
        result[f"bert_base_train_samples_per_second_{side}"] = run["train_samples_per_second"]
        result[f"bert_base_train_mfu_{side}"] = mfu(config, tokens, peak)
    result["bert_base_train_speedup"] = project["train_samples_per_second"] / baseline["train_samples_per_second"]
    result["bert_base_steps"] = steps
    return result
