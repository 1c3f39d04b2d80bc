"""A model dir describes itself: following one through `nertune predict` reads its config.json at most twice
(transformers' own loaders included) and never recipe.yaml, which stays in the run dir as the record of the run."""

from __future__ import annotations

import pytest

from nertune.inference.files import run_prediction

from .helpers import open_counter


def test_predict_reads_config_json_at_most_twice_and_never_the_recipe(trained_model_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("mary lives in paris .\nbob works at nasa in oslo .\n", encoding="utf-8")
    conll = tmp_path / "in.conll"
    conll.write_text("mary\nlives\nin\nparis\n.\n", encoding="utf-8")
    for input_path, output in ((source, tmp_path / "out.jsonl"), (conll, tmp_path / "out.conll")):
        with open_counter().counting(trained_model_dir) as counts:
            assert run_prediction(trained_model_dir, input_path, output, device="cpu", precision="fp32") > 0
        opened = {path.name: n for path, n in counts.items()}
        assert opened.get("tokenizer_config.json", 0) >= 1  # the counter sees the model dir's files (transformers')
        assert 1 <= opened.get("config.json", 0) <= 2, opened
        assert "recipe.yaml" not in opened, opened
    assert "B-PER" in (tmp_path / "out.conll").read_text()


def test_settings_section_defaults_and_errors():
    from nertune.errors import ModelError
    from nertune.model.settings import ModelSettings

    unmarked = ModelSettings.from_config({"id2label": {}}, ["O", "B-PER", "E-PER", "S-LOC"])
    assert (unmarked.head, unmarked.scheme, unmarked.max_length, unmarked.context_size) == ("linear", "BIOES", 128, 0)
    marked = ModelSettings.from_config({"nertune": {"head": "crf", "scheme": "iob2", "max_length": 64}})
    assert (marked.head, marked.scheme, marked.max_length, marked.window_overlap) == ("crf", "IOB2", 64, 32)
    with pytest.raises(ModelError, match=r"unknown keys in the 'nertune' section: \['max_lenght'\]"):
        ModelSettings.from_config({"nertune": {"max_lenght": 64}})
    with pytest.raises(ModelError, match="must be a mapping"):
        ModelSettings.from_config({"nertune": ["crf"]})
