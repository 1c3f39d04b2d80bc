"""nertune.data.formats: one extension table and one content sniffer, for training and predict alike."""

from __future__ import annotations

import json

import pytest

from nertune import data
from nertune.data import DataError

from .helpers import write

CONLL_TEXT = "-DOCSTART- -X- -X- O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\nPeter NNP I-NP I-PER\n"
PLAIN_TEXT = "John lives in Paris .\nMary works at NASA\n"
JSONL_TEXT = '{"tokens": ["Paris"], "ner_tags": ["B-LOC"]}\n'


def test_read_split_file_by_extension_and_format(tmp_path):
    conll = write(tmp_path, "x.iob2", "a B-PER\n")
    assert data.read_split_file(conll)["ner_tags"] == [["B-PER"]]
    jsonl = write(tmp_path, "x.data", json.dumps({"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]}))
    assert data.read_split_file(jsonl, fmt="json")["tokens"] == [["EU", "rejects"]]
    with pytest.raises(DataError, match=r"data\.train_file: unknown format 'xml'"):
        data.read_split_file(conll, fmt="xml", key="data.train_file")


@pytest.mark.parametrize("name", ["corpus.txt", "eng.testb", "noextension"])
@pytest.mark.parametrize(
    "content, training, predict",
    [
        (CONLL_TEXT, "conll", "conll"),
        ("@john\tO\nParis\tB-location\n\nok\tO\n", "conll", "conll"),
        (JSONL_TEXT, "json", "jsonl"),
        (PLAIN_TEXT, "text", "text"),
        ("Paris\n\nBerlin\n", "text", "text"),  # one column: unlabelled words read as texts
    ],
)
def test_txt_and_unknown_extensions_follow_one_rule_for_training_and_predict(
    tmp_path, name, content, training, predict
):
    path = write(tmp_path, name, content)
    found = data.detect_format(path, setting="data.format")
    assert (found.name, found.sniffed) == (training, True)
    assert data.prediction_input_format(path).name == predict
    fmt, records, lines = data.read_prediction_input(path)
    assert fmt == predict and (lines is not None) == (predict == "conll")
    if training == "text":
        # Training refuses what predict reads as plain text, saying how the file was read.
        with pytest.raises(
            DataError,
            match=r"data\.train_file: read as plain text from its content: line 1 "
            r".* does not end in a tag column.*data\.format=conll",
        ):
            data.read_split_file(path, key="data.train_file")
        assert [r.text for r in records] == content.splitlines()
    else:
        ds = data.read_split_file(path)
        assert ds["tokens"] == [r.tokens for r in records]  # both read the same sentences


def test_known_extensions_are_not_sniffed(tmp_path):
    path = write(tmp_path, "words.conll", PLAIN_TEXT)
    assert data.detect_format(path, setting="--format") == data.FileFormat("conll", "by its extension '.conll'")
    assert data.prediction_input_format(write(tmp_path, "x.json", "hello\n")).name == "jsonl"
    assert data.detect_format(path, "text", setting="--format").name == "text"


def test_sniffed_file_that_does_not_read_says_how_it_was_read(tmp_path):
    path = write(tmp_path, "x.conllu", "EU\tB-ORG\n")
    with pytest.raises(DataError) as err:
        data.read_split_file(path, key="data.train_file", token_column=1, tag_column=2)
    assert str(err.value).startswith(f"{path}:1: expected at least 3 columns")
    assert (
        "(read as conll from its content: its first 1 non-blank lines end in a tag column (the extension "
        "'.conllu' does not tell; data.format sets the format))" in str(err.value)
    )
    assert err.value.line == 1
    # CoNLL-U has no NER column: its lines do not end in a tag, so it is not taken for NER data.
    conllu = write(tmp_path, "y.conllu", "1\tEU\tNOUN\n2\trejects\tVERB\n")
    with pytest.raises(DataError, match=r"y\.conllu: read as plain text from its content: line 1 '1\\tEU\\tNOUN'"):
        data.read_split_file(conllu)


def test_comment_lines_are_skipped_by_the_sniffer(tmp_path):
    path = write(tmp_path, "germeval.txt", "# http://de.wikipedia.org/wiki/Berlin\n1\tBerlin\tB-LOC\tO\n")
    with pytest.raises(DataError, match=r"line 1 '# http"):
        data.read_split_file(path, token_column=1, tag_column=2)
    ds = data.read_split_file(path, token_column=1, tag_column=2, comment_prefix="#")
    assert ds["tokens"] == [["Berlin"]] and ds["line"] == [2]
    layout = data.ConllLayout(token_column=1, comment_prefix="#")
    fmt, records, _ = data.read_prediction_input(path, layout=layout)
    assert fmt == "conll" and records[0].tokens == ["Berlin"] and records[0].token_lines == [1]


def test_missing_file_names_recipe_key_and_path(tmp_path):
    with pytest.raises(DataError, match=r"data\.validation_file: file not found: .*nope\.txt"):
        data.read_split_file(tmp_path / "nope.txt", key="data.validation_file")


def test_files_without_a_known_extension_are_read_by_their_content(tmp_path, caplog):
    # The CoNLL-2003 originals: eng.train with 4 columns, IOB1 tags and -DOCSTART- lines.
    conll = write(
        tmp_path,
        "eng.train",
        "-DOCSTART- -X- -X- O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n"
        "-DOCSTART- -X- -X- O\n\nPeter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n",
    )
    with caplog.at_level("INFO"):
        ds = data.read_split_file(conll)
    assert "eng.train: read as conll from its content: line 1 is -DOCSTART-" in caplog.text
    assert "the extension '.train' does not tell" in caplog.text
    assert ds["tokens"] == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert ds["ner_tags"] == [["I-ORG", "O"], ["I-PER", "I-PER"]]
    assert ds["document_id"] == ["doc0", "doc1"]

    records = write(tmp_path, "train.data", "\n" + JSONL_TEXT)
    assert data.read_split_file(records)["ner_tags"] == [["B-LOC"]]
