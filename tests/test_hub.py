"""Model card for every run; pushing tested at the network boundary (HfApi's HTTP-calling methods)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from huggingface_hub import HfApi, ModelCard

from nertune.hub import HubError, check_hub_access, push_run, render_model_card


def card_metadata(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_model_card_has_valid_metadata_metrics_and_usage(trained_model_dir):
    card = render_model_card(trained_model_dir, "someone/tiny-ner")
    meta = card_metadata(card)
    assert meta["pipeline_tag"] == "token-classification" and meta["library_name"] == "transformers"
    results = meta["model-index"][0]["results"]
    assert {r["dataset"]["split"] for r in results} == {"validation", "test"}
    test_f1 = next(m["value"] for r in results if r["dataset"]["split"] == "test" for m in r["metrics"]
                   if m["type"] == "f1")
    assert test_f1 == 1.0  # the fixture asserts the tiny model is perfect on the synthetic test split
    assert "base_model" not in meta  # a local path is not a Hub repo id; the Hub would reject it
    for text in ("| PER |", "| LOC |", "pipeline(\"token-classification\", model=\"someone/tiny-ner\"",
                 "nertune predict someone/tiny-ner", "learning_rate", "Intended use and limitations", "Hardware"):
        assert text in card, text


class RecordingApi(HfApi):
    """HfApi with its HTTP-calling methods replaced: everything above them runs for real."""

    def __init__(self):
        super().__init__(token="hf_test_token")
        self.calls = []

    def whoami(self, *args, **kwargs):
        return {"name": "someone"}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_commit(self, repo_id, operations, *, commit_message, **kwargs):
        self.calls.append(("create_commit", repo_id, sorted(op.path_in_repo for op in operations), commit_message))
        return "https://huggingface.co/someone/tiny-ner/commit/0"


def test_push_uploads_model_card_and_reports_but_no_checkpoints(trained_run_copy):
    (trained_run_copy / "checkpoints" / "checkpoint-5").mkdir(parents=True, exist_ok=True)
    (trained_run_copy / "checkpoints" / "checkpoint-5" / "optimizer.pt").write_bytes(b"x")
    api = RecordingApi()
    push_run(trained_run_copy, "someone/tiny-ner", api=api)
    (_, repo, kwargs), (_, commit_repo, files, message) = api.calls
    assert repo == commit_repo == "someone/tiny-ner" and kwargs["exist_ok"] is True
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "metrics.json", "config.yaml",
            "report.txt", "test_predictions.conll"} <= set(files)
    assert not any(f.startswith("checkpoints/") for f in files)
    assert message.startswith("nertune: test entity F1 1.0000")
    # The card that would be validated by the Hub parses as a model card with eval results.
    parsed = ModelCard((trained_run_copy / "README.md").read_text())
    assert {r.dataset_split for r in parsed.data.eval_results} == {"validation", "test"}


def test_push_fails_clearly_without_token_or_hub(trained_run_copy, monkeypatch):
    with pytest.raises(HubError, match="owner/name"):
        check_hub_access("no-slash")
    with pytest.raises(HubError, match="hub_model_id"):
        check_hub_access(None)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(trained_run_copy / "no-hf-home"))
    with pytest.raises(HubError, match="no Hugging Face token"):
        check_hub_access("someone/tiny-ner")
    # With a token, this machine really cannot reach the Hub (offline mode in tests): a clear error.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="cannot be reached"):
        check_hub_access("someone/tiny-ner", token="hf_fake")


def test_push_cli_error_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nertune.cli", "push", str(tmp_path), "--repo-id", "a/b"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "not a finished run directory" in result.stderr and "Traceback" not in result.stderr


def test_every_run_has_a_card_and_push_to_hub_fails_before_training(trained_model_dir, tiny_model_dir,
                                                                     synthetic_corpus, tmp_path, monkeypatch):
    from nertune.config import load_recipe
    from nertune.train import run_training

    assert card_metadata((trained_model_dir / "README.md").read_text())["model-index"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_fake")  # a token is configured
    recipe = load_recipe(None, [f"model_name_or_path={tiny_model_dir}", f"output_dir={tmp_path / 'run'}",
                                f"data.train_file={synthetic_corpus['train']}", "push_to_hub=true",
                                "hub_model_id=someone/tiny-ner", "report_to=none"])
    with pytest.raises(HubError, match="cannot be reached"):
        run_training(recipe)
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "model.safetensors").exists()
