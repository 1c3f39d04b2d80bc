"""A model dir describes itself: following one through `nertune predict` reads its config.json at most twice
(transformers' own loaders included) and never recipe.yaml, which stays in the run dir as the record of the run."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from nertune.inference.files import run_prediction


class _OpenCounter:
    """Counts the files opened under one directory (audit "open" events: C-level opens too), while active."""

    def __init__(self, directory: Path) -> None:
        self.directory = str(directory.resolve())
        self.active = False
        self.counts: Counter[str] = Counter()
        sys.addaudithook(self)  # audit hooks cannot be removed: it stays, inactive, for the rest of the session

    def __call__(self, event: str, args: tuple) -> None:
        if self.active and event == "open" and isinstance(args[0], (str, bytes, Path)):
            path = str(Path(args[0] if not isinstance(args[0], bytes) else args[0].decode()).resolve())
            if path.startswith(self.directory):
                self.counts[Path(path).name] += 1


@pytest.fixture(scope="module")
def open_counter(trained_model_dir):
    return _OpenCounter(trained_model_dir)


def test_predict_reads_config_json_at_most_twice_and_never_the_recipe(open_counter, trained_model_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("mary lives in paris .\nbob works at nasa in oslo .\n", encoding="utf-8")
    conll = tmp_path / "in.conll"
    conll.write_text("mary\nlives\nin\nparis\n.\n", encoding="utf-8")
    for input_path, output in ((source, tmp_path / "out.jsonl"), (conll, tmp_path / "out.conll")):
        open_counter.counts.clear()
        open_counter.active = True
        try:
            assert run_prediction(trained_model_dir, input_path, output, device="cpu", precision="fp32") > 0
        finally:
            open_counter.active = False
        counts = open_counter.counts
        assert counts["tokenizer_config.json"] >= 1  # the counter sees the model dir's files (transformers opens)
        assert 1 <= counts["config.json"] <= 2, dict(counts)
        assert counts["recipe.yaml"] == 0, dict(counts)
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
