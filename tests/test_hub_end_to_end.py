"""Hub ids end to end through a real offline Hugging Face cache (`nertune predict|serve|evaluate owner/name`),
and datasets whose columns are not named `tokens`/`ner_tags` (a local `datasets` dataset, no Hub)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import httpx
import pytest

from nertune.data import DataError, load_splits
from nertune.recipe.schema import load_recipe

from .helpers import cache_snapshot, running_server

SRC = str(Path(__file__).resolve().parents[1] / "src")


def nertune(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nertune.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_predict_serve_and_evaluate_a_hub_id_from_the_offline_cache(trained_model_dir, tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache_snapshot(cache, "someone/tiny-ner", "c" * 40, trained_model_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)  # evaluate of a Hub id writes under ./runs/eval/
    env = dict(os.environ)
    text = tmp_path / "input.txt"
    text.write_text("mary lives in paris .\nbob works at nasa in rome today .\n", encoding="utf-8")

    outputs = {}
    for name, model in (("hub", "someone/tiny-ner"), ("dir", str(trained_model_dir))):
        done = nertune("predict", model, "--input", str(text), "--output", str(tmp_path / f"{name}.jsonl"), env=env)
        assert done.returncode == 0, done.stderr
        outputs[name] = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    assert outputs["hub"] == outputs["dir"]
    assert any("nasa" in json.dumps(record) for record in outputs["hub"])

    answers = {}
    for name, model in (("hub", "someone/tiny-ner"), ("dir", str(trained_model_dir))):
        with running_server(model, tmp_path / f"serve-{name}.log") as url:
            response = httpx.post(f"{url}/predict", json={"text": "mary lives in paris ."}, timeout=60)
            assert response.status_code == 200, response.text
            answers[name] = response.json()
    assert answers["hub"] == answers["dir"]
    assert {(e["type"], e["text"]) for e in answers["hub"]["entities"]} == {("PER", "mary"), ("LOC", "paris")}

    done = nertune("evaluate", "someone/tiny-ner", env=env)
    assert done.returncode == 0, done.stderr
    scores = json.loads(next((tmp_path / "runs" / "eval").rglob("metrics.json")).read_text())
    assert scores["f1"] == 1.0  # the run's own held-out test split, found through its saved recipe


def other_column_dataset(path: Path) -> Path:
    names = ["O", "B-PER", "B-LOC"]
    features = datasets.Features(
        {"words": datasets.List(datasets.Value("string")), "entities": datasets.List(datasets.ClassLabel(names=names))}
    )
    rows = {
        "words": [["mary", "lives", "in", "paris"], ["bob", "visited", "rome"]],
        "entities": [[1, 0, 0, 2], [1, 0, 2]],
    }
    dataset = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": dataset, "validation": dataset, "test": dataset}).save_to_disk(str(path))
    return path


def test_dataset_columns_named_by_tokens_field_and_tags_field(tmp_path):
    source = other_column_dataset(tmp_path / "saved")
    recipe = load_recipe(
        None,
        [
            "model_name_or_path=unused",
            f"data.dataset_name={source}",
            "data.tokens_field=words",
            "data.tags_field=entities",
        ],
    )
    splits, scheme = load_splits(recipe.data)
    assert splits["train"]["tokens"][0] == ["mary", "lives", "in", "paris"]
    assert splits["train"]["ner_tags"][1] == ["B-PER", "O", "B-LOC"]
    # Without the keys: the error names the columns found and the key that fixes it.
    with pytest.raises(DataError, match=r"no 'tokens' column .*'words'.*set data\.tokens_field"):
        load_splits(load_recipe(None, ["model_name_or_path=unused", f"data.dataset_name={source}"]).data)
    with pytest.raises(DataError, match=r"no tag column .*'entities'.*set data\.tags_field"):
        load_splits(
            load_recipe(
                None, ["model_name_or_path=unused", f"data.dataset_name={source}", "data.tokens_field=words"]
            ).data
        )
