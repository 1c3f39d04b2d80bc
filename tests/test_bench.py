"""`make bench` (scripts/bench.py) runs both sides on the same data and writes its ratios (not a timing assertion).

The harness is run as the user runs it, in a subprocess; the tests read its bench.json and never import it."""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys

import pytest

from .helpers import REPO, subprocess_env, tiny_overrides

# Each option's (speedup over the pipeline, test F1) keys in bench.json.
INFERENCE_OPTIONS = {
    "pytorch": ("inference_speedup", "f1_pytorch"),
    "pytorch_int8": ("inference_speedup_int8", "f1_int8"),
    "onnx": ("inference_speedup_onnx", "f1_onnx"),
    "onnx_int8": ("inference_speedup_onnx_int8", "f1_onnx_int8"),
}


@pytest.mark.slow
@pytest.mark.parametrize("length", ["num_train_epochs=4", "max_steps=60"])  # MFU and tokens/s hold for both
def test_bench_writes_ratios_and_agreement(tiny_model_dir, synthetic_corpus, tmp_path, length):
    overrides = [
        f"model_name_or_path={tiny_model_dir}",
        f"output_dir={tmp_path / 'bench'}",
        f"data.train_file={synthetic_corpus['train']}",
        f"data.validation_file={synthetic_corpus['validation']}",
        f"data.test_file={synthetic_corpus['test']}",
        "learning_rate=5e-3",
        "num_train_epochs=4",
        "per_device_train_batch_size=16",
        "warmup_ratio=0",
        "max_length=32",
        "window_overlap=8",
        "precision=fp32",
        length,
    ]
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts/bench.py"),
            "recipes/quickstart.yaml",
            *overrides,
            "--target-eval-steps=5",
            "--f1-seeds=2",
        ],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    result = json.loads((tmp_path / "bench" / "bench.json").read_text())
    for key in (
        "train_speedup",
        "inference_speedup",
        "f1_project",
        "f1_baseline",
        "entities_identical",
        "mfu",
        "time_to_target_speedup",
        "target_f1",
        "f1_baseline_run_ner_defaults",
        "time_to_target_s_baseline",
        "time_to_target_s_project",
        "target_reached_step",
        "serving_efficiency",
        "serving_latency_p50_ms",
        "inference_speedup_int8",
        "inference_best_option",
        "inference_best_speedup",
    ):
        assert key in result
    assert len(result["f1_project_runs"]) == len(result["f1_baseline_runs"]) == 2
    assert result["f1_project"] == pytest.approx(sum(result["f1_project_runs"]) / 2)
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript"):  # the `onnx` extra
        assert result["f1_onnx"] == pytest.approx(result["f1_pytorch"], abs=0.005)
        assert result["inference_speedup_onnx"] > 0 and 0 <= result["f1_onnx_int8"] <= 1
    assert result["entities_identical"] is True
    assert result["f1_project"] > 0.8 and result["f1_baseline"] > 0.8  # both learn the learnable corpus
    assert 0 < result["mfu"] < 1
    assert result["train_tokens_per_second_project"] > 0 and result["train_tokens_per_second_baseline"] > 0
    # Time to target: the project stops at its first evaluation that reaches the run_ner.py baseline's F1.
    timeline = result["target_timeline"]
    assert timeline and all(point["f1"] < result["target_f1"] for point in timeline[:-1])
    assert timeline[-1]["f1"] >= result["target_f1"] and timeline[-1]["step"] == result["target_reached_step"]
    assert result["target_reached_step"] % result["target_eval_steps"] == 0 and result["target_eval_steps"] == 5
    runs, steps = result["time_to_target_s_project_runs"], result["target_reached_steps"]
    assert len(runs) == len(steps) == 2 and steps[0] == result["target_reached_step"]  # one per F1 seed
    assert 0 < runs[0] == timeline[-1]["train_seconds"] and all(step % 5 == 0 for step in steps)
    assert result["time_to_target_s_project"] == pytest.approx(sum(runs) / 2)
    assert result["time_to_target_speedup"] == pytest.approx(
        result["time_to_target_s_baseline"] / result["time_to_target_s_project"]
    )
    # The best inference option: the fastest whose test F1 is within half a point of PyTorch's.
    allowed = {
        name: result[speedup]
        for name, (speedup, f1) in INFERENCE_OPTIONS.items()
        if speedup in result and (name == "pytorch" or result.get(f1, -1) >= result["f1_pytorch"] - 0.005)
    }
    assert result["inference_best_option"] == max(allowed, key=allowed.get)
    assert result["inference_best_speedup"] == pytest.approx(allowed[result["inference_best_option"]])
    # Serving: every round between two offline runs, the median round reported, no failed request.
    rounds, offline = result["serving_efficiency_rounds"], result["serving_offline_runs"]
    assert result["serving_errors"] == 0 and len(offline) == len(rounds) + 1 and all(r > 0 for r in rounds)
    assert result["serving_efficiency"] == pytest.approx(statistics.median(rounds))
    references = [(before + after) / 2 for before, after in zip(offline, offline[1:])]
    assert result["serving_offline_sentences_per_second"] == pytest.approx(statistics.median(references))
    assert 0 < result["serving_latency_p50_ms"] <= result["serving_latency_p95_ms"]
    assert result["serving_single_client_latency_ms"] > 0
    table = (tmp_path / "bench" / "bench.md").read_text()
    assert "training samples/s" in table and f"validation F1 {result['target_f1']:.4f}" in table


# Imports bench/ in the subprocess only, like the tests above.
TIMELINES = """
import json, sys
from bench.train import time_to_target
from nertune.recipe.schema import load_recipe

recipe = load_recipe("recipes/quickstart.yaml", json.loads(sys.argv[1]))
print(json.dumps({n: time_to_target(recipe, 2.0, n)["timeline"] for n in (1, 3)}))
"""


@pytest.mark.slow
def test_time_to_target_evaluations_do_not_change_the_training(tiny_model_dir, synthetic_corpus, tmp_path):
    """Each evaluation's data loader draws a seed from torch's global generator; the harness puts the
    generator back, so the model at step 3, 6 and 9 is the same whether it was evaluated every step or every
    third (the tiny BERT has dropout, so a shifted generator would change the weights)."""
    overrides = tiny_overrides(tiny_model_dir, synthetic_corpus, tmp_path / "run", "max_steps=9", "seed=7")
    done = subprocess.run(
        [sys.executable, "-c", TIMELINES, json.dumps(overrides)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    every_step, every_third = json.loads(done.stdout.strip().splitlines()[-1]).values()
    assert [point["step"] for point in every_third] == [3, 6, 9] and len(every_step) == 9
    for point in every_third:  # 2.0 is an F1 no run reaches: both train all 9 steps
        same_step = every_step[point["step"] - 1]
        assert same_step["step"] == point["step"]
        assert same_step["loss"] == pytest.approx(point["loss"], rel=1e-6, abs=1e-7)
    assert every_step[0]["loss"] != pytest.approx(every_step[-1]["loss"], rel=1e-3)  # the weights did move
