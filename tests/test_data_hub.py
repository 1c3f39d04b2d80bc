"""nertune.data.hub: Hub datasets (only datasets.load_dataset is replaced: there is no Hub access here)."""

from __future__ import annotations

import datasets
import pytest

from nertune import data

from .helpers import data_cfg, write

CONLL2003_NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def fake_conll2003() -> datasets.DatasetDict:
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "tokens": datasets.List(datasets.Value("string")),
            "pos_tags": datasets.List(datasets.ClassLabel(names=["NN", "NNP", "VBZ"])),
            "chunk_tags": datasets.List(datasets.ClassLabel(names=["O", "B-NP", "B-VP"])),
            "ner_tags": datasets.List(datasets.ClassLabel(names=CONLL2003_NAMES)),
        }
    )

    def split(rows):
        return datasets.Dataset.from_dict(
            {
                "id": [str(i) for i in range(len(rows))],
                "tokens": [r[0] for r in rows],
                "pos_tags": [[1] * len(r[0]) for r in rows],
                "chunk_tags": [[1] * len(r[0]) for r in rows],
                "ner_tags": [r[1] for r in rows],
            },
            features=features,
        )

    return datasets.DatasetDict(
        {
            "train": split([(["EU", "rejects", "German"], [3, 0, 7]), (["Peter", "in", "Bonn"], [1, 0, 5])]),
            "validation": split([(["Brussels"], [5])]),
            "test": split([(["Bonn", "Peter"], [5, 1])]),
        }
    )


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []

    def load_dataset(name, config=None, revision=None, **kwargs):
        calls.append((name, config, revision))
        return fake_conll2003()

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_load_hub_dataset_converts_classlabels(fake_hub):
    splits = data.load_hub_dataset("lhoestq/conll2003", revision="abc")
    assert fake_hub == [("lhoestq/conll2003", None, "abc")]
    assert set(splits) == {"train", "validation", "test"}
    train = splits["train"]
    assert train.column_names == list(data.FEATURES)
    assert train["ner_tags"] == [["B-ORG", "O", "B-MISC"], ["B-PER", "O", "B-LOC"]]
    assert train["document_id"] == ["", ""] and train["sentence_id"] == [0, 1]


def test_load_hub_dataset_maps_dev_split_name(monkeypatch):
    raw = fake_conll2003()
    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda *a, **k: datasets.DatasetDict({"train": raw["train"], "dev": raw["validation"]}),
    )
    assert set(data.load_hub_dataset("x")) == {"train", "validation"}


def test_load_splits_from_hub_with_local_test_file(fake_hub, tmp_path):
    write(tmp_path, "test.txt", "Paris B-LOC\n")
    cfg = data_cfg(dataset_name="lhoestq/conll2003", test_file="test.txt")
    splits, scheme = data.load_splits(cfg, base_dir=tmp_path)
    assert scheme == "IOB2"
    assert splits["validation"]["tokens"] == [["Brussels"]]
    assert splits["test"]["tokens"] == [["Paris"]]
