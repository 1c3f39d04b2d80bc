"""`nertune bench` runs both sides on the same data and writes its ratios (not a timing assertion)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from bench.run import run_bench
from bench.serving import SERVING_ROUNDS


@pytest.mark.slow
@pytest.mark.parametrize("length", ["num_train_epochs=4", "max_steps=60"])  # MFU and tokens/s hold for both
def test_bench_writes_ratios_and_agreement(tiny_model_dir, synthetic_corpus, tmp_path, length):
    result = run_bench(
        None,
        [
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
        ],
        target_eval_steps=5,
        f1_seeds=2,
    )
    on_disk = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert on_disk == result
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
    assert result["serving_errors"] == 0 and result["serving_efficiency"] > 0
    assert len(result["serving_efficiency_rounds"]) == SERVING_ROUNDS
    assert len(result["serving_offline_runs"]) == SERVING_ROUNDS + 1
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
    assert result["target_reached_step"] % result["target_eval_steps"] == 0
    assert 0 < result["time_to_target_s_project"] == timeline[-1]["train_seconds"]
    assert result["time_to_target_speedup"] == pytest.approx(
        result["time_to_target_s_baseline"] / result["time_to_target_s_project"]
    )
    table = (tmp_path / "bench" / "bench.md").read_text()
    assert "training samples/s" in table and f"validation F1 {result['target_f1']:.4f}" in table


def test_best_inference_option_keeps_f1_within_half_a_point():
    from bench.inference import best_inference_option

    inference = {
        "project_sentences_per_second": 100.0,
        "f1_pytorch": 0.50,
        "int8_sentences_per_second": 130.0,
        "f1_int8": 0.496,  # -0.4 point: allowed
        "onnx_sentences_per_second": 120.0,
        "f1_onnx": 0.50,
        "onnx_int8_sentences_per_second": 200.0,
        "f1_onnx_int8": 0.49,
    }  # -1 point: not a serving option
    assert best_inference_option(inference) == ("pytorch_int8", 130.0)
    inference["f1_int8"] = 0.494
    assert best_inference_option(inference) == ("onnx", 120.0)
    # Without test F1s nothing but fp32 PyTorch is known to be accurate.
    assert best_inference_option({"project_sentences_per_second": 100.0, "onnx_sentences_per_second": 150.0}) == (
        "pytorch",
        100.0,
    )
