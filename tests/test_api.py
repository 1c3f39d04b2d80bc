"""The Python API of notebooks: `from nertune import train, evaluate, predict, NerPredictor, ...`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nertune import NerPredictor, NertuneError, evaluate, load_recipe, predict, train

from .helpers import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


def test_import_nertune_stays_cheap():
    code = "import sys, nertune; print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_bad_input_through_the_api_is_a_nertune_error(tmp_path):
    with pytest.raises(NertuneError, match="did you mean 'learning_rate'"):
        train(None, ["model_name_or_path=x", "learnig_rate=1e-4"])
    with pytest.raises(NertuneError, match="model directory not found"):
        NerPredictor.from_pretrained(tmp_path / "nope")


@pytest.mark.slow
def test_train_then_predict_evaluate_and_tag_in_memory(tiny_model_dir, synthetic_corpus, tmp_path):
    recipe = load_recipe(None, tiny_overrides(tiny_model_dir, synthetic_corpus, tmp_path / "run"))
    # Keyword settings override the recipe; `__` is the dot of a nested key.
    metrics = train(
        recipe, max_steps=60, eval_strategy="no", save_strategy="no", data__test_file=synthetic_corpus["test"]
    )
    assert metrics["test_f1"] >= 0.95
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_f1"] == metrics["test_f1"]
    assert load_recipe(tmp_path / "run" / "recipe.yaml").max_steps == 60

    scores = evaluate(tmp_path / "run", split="validation", bootstrap=0)
    assert scores["f1"] >= 0.95

    (tmp_path / "texts.txt").write_text("bob works at nasa in oslo .\n", encoding="utf-8")
    assert predict(tmp_path / "run", tmp_path / "texts.txt", tmp_path / "out.jsonl") == 1
    record = json.loads((tmp_path / "out.jsonl").read_text())
    assert [(e["type"], e["text"]) for e in record["entities"]] == [("PER", "bob"), ("ORG", "nasa"), ("LOC", "oslo")]

    tagger = NerPredictor.from_pretrained(tmp_path / "run")
    (result,) = tagger.predict_texts(["mary lives in paris ."])
    assert [(e["type"], e["text"]) for e in result["entities"]] == [("PER", "mary"), ("LOC", "paris")]
