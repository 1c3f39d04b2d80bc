"""`nertune export --format onnx`: an exported run dir predicts and serves through ONNX Runtime exactly as PyTorch."""

from __future__ import annotations

import json
import sys

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from nertune.cli import main  # noqa: E402
from nertune.inference.export import REPORT_FILE, export_run  # noqa: E402
from nertune.inference.predictor import NerPredictor  # noqa: E402
from nertune.model.rundir import RunDir  # noqa: E402

from .helpers import make_sentences, running_server, tiny_recipe, write_conll  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared CPU
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def exported_dir(trained_model_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["export", str(trained_model_dir), "--export-format", "onnx", "--output", str(output)]) == 0
    return output


def small_corpus(directory):
    return {
        name: write_conll(directory / f"{name}.conll", make_sentences(n, seed=seed))
        for name, n, seed in (("train", 120, 1), ("validation", 20, 2), ("test", 30, 3))
    }


def test_export_writes_a_run_dir_with_identical_entities(exported_dir, trained_model_dir):
    for name in ("model.onnx", "config.json", "recipe.yaml", "tokenizer.json", REPORT_FILE):
        assert (exported_dir / name).is_file(), name
    assert not (exported_dir / "model.safetensors").exists()  # ONNX is its only copy of the weights
    report = json.loads((exported_dir / REPORT_FILE).read_text())
    assert report["parity_text"].startswith("test split (40 of 40")  # the run's own test file, via its recipe
    assert report["entities_identical"] is True and report["sentences_with_different_entities"] == 0
    assert report["max_abs_logit_difference"] < 1e-4
    run = RunDir.load(exported_dir)
    original = RunDir.load(trained_model_dir)
    assert run.is_onnx and not original.is_onnx
    assert (run.labels, run.scheme, run.max_length, run.window_overlap) == (
        original.labels,
        original.scheme,
        original.max_length,
        original.window_overlap,
    )
    with pytest.raises(ValueError, match="ONNX export"):
        run.load_model()


def test_predict_on_exported_dir_writes_the_same_file(exported_dir, trained_model_dir, tmp_path):
    source = tmp_path / "input.txt"
    # The long line is windowed at max_length=32: windows merge the same way on both backends.
    source.write_text(
        "john lives in paris .\nmary works at nasa in oslo today .\n"
        + " ".join(["bob visited the rome ."] * 12)
        + "\n",
        encoding="utf-8",
    )
    outputs = {}
    for name, model_dir in (("pytorch", trained_model_dir), ("onnx", exported_dir)):
        outputs[name] = tmp_path / f"{name}.jsonl"
        assert (
            main(
                [
                    "predict",
                    str(model_dir),
                    "--input",
                    str(source),
                    "--output",
                    str(outputs[name]),
                    "--device",
                    "cpu",
                    "--precision",
                    "fp32",
                ]
            )
            == 0
        )
    pytorch_rows = [json.loads(line) for line in outputs["pytorch"].read_text().splitlines()]
    onnx_rows = [json.loads(line) for line in outputs["onnx"].read_text().splitlines()]
    assert len(onnx_rows) == 3
    # Same tags and spans; scores agree to float rounding (ONNX Runtime fuses kernels differently).
    for ours, theirs in zip(pytorch_rows, onnx_rows):
        assert ours["tags"] == theirs["tags"]
        assert [(e["type"], e["start"], e["end"]) for e in ours["entities"]] == [
            (e["type"], e["start"], e["end"]) for e in theirs["entities"]
        ]
        for a, b in zip(ours["entities"], theirs["entities"]):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)
    assert {(e["type"], e["text"]) for e in onnx_rows[0]["entities"]} == {("PER", "john"), ("LOC", "paris")}


def test_onnx_predictor_rejects_gpu_and_precision(exported_dir):
    with pytest.raises(ValueError, match="ONNX export"):
        NerPredictor.from_pretrained(exported_dir, precision="bf16")
    with pytest.raises(ValueError, match="ONNX Runtime on the CPU"):
        NerPredictor.from_pretrained(exported_dir, device="cuda")


def test_serve_runs_the_exported_dir(exported_dir, tmp_path):
    import httpx

    with running_server(exported_dir, tmp_path / "server.log") as url:
        response = httpx.post(f"{url}/predict", json={"text": "mary works at nasa ."}, timeout=30)
        info = httpx.get(f"{url}/info", timeout=30).json()
    assert response.status_code == 200, response.text
    assert {(e["type"], e["text"]) for e in response.json()["entities"]} == {("PER", "mary"), ("ORG", "nasa")}
    assert info["device"] == "cpu"


@pytest.mark.slow  # trains a CRF model
def test_crf_head_exports_with_its_transitions(tiny_model_dir, tmp_path):
    from nertune.training.run import run_training

    corpus = small_corpus(tmp_path)
    run_training(
        tiny_recipe(
            tiny_model_dir,
            corpus,
            tmp_path / "crf",
            "head=crf",
            "max_steps=30",
            "crf_learning_rate=0.05",
            "eval_strategy=no",
            "save_strategy=no",
        )
    )
    report = export_run(tmp_path / "crf", tmp_path / "crf-onnx")
    assert report["head"] == "crf" and report["entities_identical"] is True, report
    assert (tmp_path / "crf-onnx" / "head_weights" / "model.safetensors").is_file()
    exported = NerPredictor.from_pretrained(tmp_path / "crf-onnx")
    reference = NerPredictor.from_pretrained(tmp_path / "crf", device="cpu", precision="fp32")
    assert torch.equal(exported.model.crf.transitions, reference.model.crf.transitions)
    assert exported.model.crf.transitions.abs().sum() > 0  # the learned scores, not a fresh CRF
    sentences = [t for t, _ in make_sentences(20, seed=7)]
    assert [[t for t, _ in s] for s in exported.predict_words(sentences)] == [
        [t for t, _ in s] for s in reference.predict_words(sentences)
    ]


def test_int8_export_reports_changed_sentences(trained_model_dir, tmp_path, capsys):
    output = tmp_path / "int8"
    assert main(["export", str(trained_model_dir), "--output", str(output), "--quantize", "int8"]) == 0
    printed = capsys.readouterr().out
    assert "ONNX int8" in printed and "sentences with different entities" in printed
    report = json.loads((output / REPORT_FILE).read_text())
    assert report["quantize"] == "int8" and report["sentences"] == 40
    assert 0 <= report["sentences_with_different_entities"] <= 40
    assert len(report["different_examples"]) == min(report["sentences_with_different_entities"], 5)
    import onnx

    operators = {node.op_type for node in onnx.load(str(output / "model.onnx")).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= operators, operators  # int8 weights, activations per batch
    tagged = NerPredictor.from_pretrained(output).predict_texts(["john lives in paris ."])[0]
    assert len(tagged["tags"]) == 5


@pytest.mark.slow  # trains a LoRA adapter
def test_lora_adapter_dir_is_merged_on_export(tiny_model_dir, tmp_path):
    from nertune.training.run import run_training

    corpus = small_corpus(tmp_path)
    run_training(
        tiny_recipe(
            tiny_model_dir,
            corpus,
            tmp_path / "lora",
            "lora.enabled=true",
            "lora.r=4",
            "lora.alpha=8",
            "max_steps=10",
            "eval_strategy=no",
            "save_strategy=no",
        )
    )
    adapter_dir = tmp_path / "lora"
    assert RunDir.load(adapter_dir).is_adapter
    report = export_run(adapter_dir, tmp_path / "lora-onnx")
    assert report["merged_lora_adapter"] is True and report["entities_identical"] is True, report
    assert report["max_abs_logit_difference"] < 1e-4


def test_clear_errors(trained_model_dir, exported_dir, tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]) == 2
    assert "model directory not found" in capsys.readouterr().err
    assert main(["export", str(exported_dir), "--output", str(tmp_path / "again")]) == 2
    assert "already an ONNX export" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    assert main(["export", str(trained_model_dir), "--output", str(tmp_path / "full")]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_missing_extra_names_it(trained_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails as if not installed
    assert main(["export", str(trained_model_dir), "--output", str(tmp_path / "out")]) == 2
    assert "pip install 'nertune[onnx]'" in capsys.readouterr().err
