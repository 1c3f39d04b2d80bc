"""Published corpora read exactly as their authors distribute them: CLUENER2020's train.json (spans inside runs
of Latin letters or digits, nested book/company pairs), GermEval 2014 (`#` comment lines, a second column of
nested tags), Weibo NER (`中0` segmentation-position suffixes), Label Studio / Doccano exports with overlapping
spans; and a real training run on a CLUENER-style file."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

from nertune import data
from nertune.data import DataError
from nertune.data.spans import SpanStats

from .helpers import build_tiny_model, data_cfg, write

# As in CLUENER2020's train.json, line 86: `CPL` is tagged inside `CPL2011`; line 1507: a company inside a book.
CPL_LINE = {
    "text": "CPL2011年度总决赛在上海举行",
    "label": {"organization": {"CPL": [[0, 2]]}, "address": {"上海": [[13, 14]]}},
}
BOOK_LINE = {
    "text": "读了《招商银行：转型之路》一书",
    "label": {"book": {"《招商银行：转型之路》": [[2, 12]]}, "company": {"招商银行": [[3, 6]]}},
}
PLAIN_LINE = {"text": "张伟在北京工作", "label": {"name": {"张伟": [[0, 1]]}, "address": {"北京": [[3, 4]]}}}


def cluener(tmp_path: Path, *records: dict, name: str = "train.json") -> Path:
    return write(tmp_path, name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def test_cluener_span_inside_a_latin_run_splits_the_run_and_keeps_offsets_exact(tmp_path, caplog):
    path = cluener(tmp_path, PLAIN_LINE, CPL_LINE)
    stats = SpanStats()
    with caplog.at_level(logging.INFO, logger="nertune.data"):
        ds = data.read_json(path, stats=stats)
    tokens, tags = ds["tokens"][1], ds["ner_tags"][1]
    assert tokens[:3] == ["CPL", "2011", "年"] and tags[:3] == ["B-organization", "O", "O"]
    assert "".join(tokens) == CPL_LINE["text"]  # no character lost or added
    assert tags[tokens.index("上") : tokens.index("上") + 2] == ["B-address", "I-address"]
    assert stats.split_words == 1 and stats.records == 2 and stats.dropped_spans == 0
    assert "2 records tagged from character spans; 1 words split at a span boundary" in caplog.text
    assert "spans" not in ds.column_names  # flat data keeps the contract's columns


def test_cluener_nested_company_in_a_book_keeps_the_book_and_reports_the_company(tmp_path, caplog):
    path = cluener(tmp_path, PLAIN_LINE, BOOK_LINE)
    stats = SpanStats()
    with caplog.at_level(logging.INFO, logger="nertune.data"):
        ds = data.read_json(path, stats=stats)
    tags = ds["ner_tags"][1]
    assert tags[2:13] == ["B-book"] + ["I-book"] * 10 and set(tags[:2] + tags[13:]) == {"O"}
    assert stats.as_metrics() == {"split_words": 0, "nested_spans": 1, "dropped_spans": 1}
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert f"{path}:2 [3, 7) 'company' '招商银行' inside [2, 13) 'book' '《招商银行：转型之路》'" in warning
    assert "dropped 1 nested or overlapping spans" in warning and "data.nested=keep" in warning
    with pytest.raises(DataError, match=r"train.json:2: entity \[3, 7\) 'company' '招商银行' overlaps another"):
        data.read_json(path, nested="error")


def test_nested_keep_stores_every_level_in_word_indices(tmp_path):
    path = cluener(tmp_path, PLAIN_LINE, BOOK_LINE, CPL_LINE)
    ds = data.read_json(path, nested="keep")
    assert ds["ner_tags"][1][2] == "B-book"  # ner_tags stays the outermost level
    assert ds["spans"][1] == [{"type": "book", "start": 2, "end": 13}, {"type": "company", "start": 3, "end": 7}]
    assert ds["spans"][0] == [{"type": "name", "start": 0, "end": 2}, {"type": "address", "start": 3, "end": 5}]
    assert ds["spans"][2][0] == {"type": "organization", "start": 0, "end": 1}


def test_load_splits_reports_span_stats_per_file_and_renames_nested_levels(tmp_path):
    train = cluener(tmp_path, *([PLAIN_LINE, BOOK_LINE, CPL_LINE] * 4))
    stats: dict[str, SpanStats] = {}
    cfg = data_cfg(train_file=str(train), nested="keep", label_map={"company": "ORG", "book": "O"})
    splits, _ = data.load_splits(cfg, span_stats=stats)
    assert stats["data.train_file"].as_metrics() == {"split_words": 4, "nested_spans": 4, "dropped_spans": 0}
    all_spans = [s for split in splits.values() for row in split["spans"] for s in row]
    assert {s["type"] for s in all_spans} == {"name", "address", "organization", "ORG"}


def test_format_conll_on_cluener_json_says_it_looks_like_json(tmp_path):
    path = cluener(tmp_path, CPL_LINE)
    with pytest.raises(DataError) as err:
        data.read_split_file(path, "conll")
    message = str(err.value)
    assert message.startswith(f"{path}:1: invalid tag ")
    assert "train.json looks like JSON lines (CLUENER/span JSON): line 1 starts with '{'" in message
    assert message.endswith("set data.format=json")


def test_format_json_on_a_conll_file_says_it_looks_like_conll(tmp_path):
    path = write(tmp_path, "train.json", "John B-PER\nlives O\n")
    with pytest.raises(DataError, match=r"looks like CoNLL \(a token and a tag per line\).*set data.format=conll"):
        data.read_split_file(path)


GERMEVAL = (
    "#\thttp://de.wikipedia.org/wiki/Manfred_Korfmann\t[2009-10-17]\n"
    "1\tAufgrund\tO\tO\n2\tseiner\tO\tO\n3\tInitiative\tO\tO\n4\tfand\tO\tO\n5\t1996\tO\tO\n\n"
    "#\thttp://www.spiegel.de/politik/ausland/0,1518,620734,00.html\t[2010-07-04]\n"
    "1\tDie\tO\tO\n2\tDeutsche\tB-ORG\tB-LOCderiv\n3\tBank\tI-ORG\tO\n4\tin\tO\tO\n5\tBerlin\tB-LOC\tO\n\n"
)


def test_germeval_comment_line_without_comment_prefix_says_which_key(tmp_path):
    path = write(tmp_path, "NER-de-train.tsv", GERMEVAL)
    with pytest.raises(DataError) as err:
        data.read_split_file(path)
    assert str(err.value).startswith(f"{path}:1: invalid tag '[2009-10-17]'")
    assert "a comment line? data.comment_prefix=# skips such lines" in str(err.value)
    txt = write(tmp_path, "NER-de-train.txt", GERMEVAL)  # sniffed: the '#' line is named with the key too
    with pytest.raises(DataError, match="data.comment_prefix=# skips such lines"):
        data.read_split_file(txt)


def test_germeval_inner_column_is_a_second_level_of_spans(tmp_path):
    path = write(tmp_path, "NER-de-train.tsv", GERMEVAL)
    layout = dict(token_column=1, tag_column=2, comment_prefix="#")
    flat = data.read_split_file(path, **layout)
    assert flat["tokens"][1] == ["Die", "Deutsche", "Bank", "in", "Berlin"] and "spans" not in flat.column_names
    ds = data.read_split_file(path, **layout, nested_tag_columns=[3])
    assert ds["ner_tags"][1] == ["O", "B-ORG", "I-ORG", "O", "B-LOC"]
    assert ds["spans"][1] == [
        {"type": "ORG", "start": 1, "end": 3},
        {"type": "LOCderiv", "start": 1, "end": 2},
        {"type": "LOC", "start": 4, "end": 5},
    ]
    assert ds["spans"][0] == []
    bad = write(tmp_path, "bad.tsv", GERMEVAL.replace("B-LOCderiv", "X-LOCderiv"))
    with pytest.raises(DataError, match=r"bad.tsv:10: invalid tag 'X-LOCderiv'"):
        data.read_split_file(bad, **layout, nested_tag_columns=[3])


WEIBO = "科0\tO\n技0\tO\n张0\tB-PER.NAM\n伟1\tI-PER.NAM\n说0\tO\n，0\tO\n\n北0\tB-GPE.NAM\n京0\tI-GPE.NAM\n好0\tO\n\n"


def test_weibo_digit_suffix_is_warned_about_and_stripped_with_strip_token_suffix(tmp_path, caplog):
    path = write(tmp_path, "weiboNER_2nd_conll.train", WEIBO)
    with caplog.at_level(logging.WARNING, logger="nertune.data"):
        ds = data.read_split_file(path)
    assert ds["tokens"][0][:3] == ["科0", "技0", "张0"]
    assert "looks like a segmentation-position suffix" in caplog.text and "'科0' at line 1" in caplog.text
    assert "data.strip_token_suffix=digit" in caplog.text and "data.label_map" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nertune.data"):
        ds = data.read_split_file(path, strip_token_suffix="digit")
    assert ds["tokens"] == [["科", "技", "张", "伟", "说", "，"], ["北", "京", "好"]] and not caplog.text
    cfg = data_cfg(
        train_file=str(path),
        strip_token_suffix="digit",
        label_map={"PER.NAM": "PER", "GPE.NAM": "GPE"},
        validation_ratio=0.0,
        test_ratio=0.0,
    )
    splits, _ = data.load_splits(cfg)
    assert splits["train"]["ner_tags"][0][2:4] == ["B-PER", "I-PER"]


def test_a_chinese_file_with_unsuffixed_tokens_is_not_warned_about(tmp_path, caplog):
    path = write(tmp_path, "train.bmes", "张 B-PER\n伟 E-PER\n在 O\n2011 O\n\n")
    with caplog.at_level(logging.WARNING, logger="nertune.data"):
        data.read_split_file(path)
    assert "suffix" not in caplog.text


def test_label_studio_and_doccano_exports_with_overlapping_spans(tmp_path, caplog):
    text = "Bank of America Tower in New York"
    label_studio = {  # JSON-MIN export: one span may carry several labels
        "text": text,
        "label": [
            {"start": 0, "end": 21, "text": "Bank of America Tower", "labels": ["FAC"]},
            {"start": 0, "end": 15, "text": "Bank of America", "labels": ["ORG"]},
            {"start": 25, "end": 33, "text": "New York", "labels": ["LOC", "GPE"]},
        ],
    }
    doccano = {  # sequence-labelling JSONL export, crossing spans
        "id": 7,
        "text": text,
        "entities": [
            {"id": 1, "label": "ORG", "start_offset": 0, "end_offset": 15},
            {"id": 2, "label": "FAC", "start_offset": 8, "end_offset": 21},
        ],
    }
    path = write(tmp_path, "export.jsonl", json.dumps(label_studio) + "\n" + json.dumps(doccano) + "\n")
    stats = SpanStats()
    with caplog.at_level(logging.WARNING, logger="nertune.data"):
        ds = data.read_split_file(path, stats=stats)
    assert ds["ner_tags"][0] == ["B-FAC", "I-FAC", "I-FAC", "I-FAC", "O", "B-GPE", "I-GPE"]
    assert ds["ner_tags"][1] == ["B-ORG", "I-ORG", "I-ORG", "O", "O", "O", "O"]
    assert stats.nested_spans == 3  # ORG inside FAC, LOC on the same words as GPE, FAC crossing ORG
    assert "export.jsonl:2 [8, 21) 'FAC' 'America Tower' crossing [0, 15) 'ORG' 'Bank of America'" in caplog.text
    keep = data.read_split_file(path, nested="keep")
    assert len(keep["spans"][0]) == 4 and len(keep["spans"][1]) == 2


def test_recipe_keys_check_their_choices():
    from nertune.errors import RecipeError
    from nertune.recipe.schema import load_recipe

    recipe = load_recipe(None, ["model_name_or_path=x", "data.nested=keep", "data.nested_tag_columns=[3]"])
    assert recipe.data.nested == "keep" and recipe.data.nested_tag_columns == [3]
    assert recipe.data.span_alignment == "split" and recipe.data.strip_token_suffix == "none"
    with pytest.raises(RecipeError, match=r"'data.nested' must be one of \['outermost', 'error', 'keep'\]"):
        load_recipe(None, ["model_name_or_path=x", "data.nested=inner"])
    with pytest.raises(RecipeError, match="'data.strip_token_suffix' must be one of"):
        load_recipe(None, ["model_name_or_path=x", "data.strip_token_suffix=letter"])


NAMES = ["张伟", "王芳", "李娜", "刘洋"]
COMPANIES = ["招商银行", "腾讯集团"]


def cluener_corpus(n: int, seed: int) -> list[dict]:
    """CLUENER-style records: organisations inside Latin+digit runs, companies nested in book titles."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, company, year = rng.choice(NAMES), rng.choice(COMPANIES), rng.choice(["2011", "2012"])
        if rng.random() < 0.5:
            text = f"{name}参加CPL{year}比赛"
            label = {"name": {name: [[0, 1]]}, "organization": {"CPL": [[4, 6]]}}
        else:
            book = f"《{company}之路》"
            text = f"{name}读了{book}"
            label = {"name": {name: [[0, 1]]}, "book": {book: [[4, 4 + len(book) - 1]]}}
            label["company"] = {company: [[5, 5 + len(company) - 1]]}
        out.append({"text": text, "label": label})
    return out


@pytest.mark.slow
def test_training_on_a_cluener_style_file_end_to_end(tmp_path):
    from transformers import BertTokenizer

    from nertune.recipe.schema import load_recipe
    from nertune.training.run import run_training

    records = cluener_corpus(120, 1)
    chars = dict.fromkeys("".join(r["text"] for r in records))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cpl", "2011", "2012", *chars]
    model_dir = tmp_path / "tiny-zh"
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(model_dir)
    build_tiny_model(seed=0, vocab_size=len(vocab), max_position_embeddings=64).save_pretrained(model_dir)
    train = cluener(tmp_path, *records)
    dev = cluener(tmp_path, *cluener_corpus(30, 2), name="dev.json")
    recipe = load_recipe(
        None,
        [
            f"model_name_or_path={model_dir}",
            f"output_dir={tmp_path / 'run'}",
            f"data.train_file={train}",
            f"data.validation_file={dev}",
            f"data.test_file={dev}",
            "learning_rate=5e-3",
            "num_train_epochs=4",
            "warmup_ratio=0",
            "per_device_train_batch_size=16",
            "eval_strategy=no",
            "save_strategy=no",
            "report_to=none",
            "precision=fp32",
            "max_length=32",
            "window_overlap=8",
        ],
    )
    metrics = run_training(recipe)
    assert {"B-organization", "B-book", "B-name"} <= set(metrics["labels"])
    assert "B-company" not in metrics["labels"]  # the nested level is dropped from flat tags (outermost)
    assert metrics["test_f1"] > 0.5, metrics


def test_replay_file_without_nested_levels_joins_a_train_split_with_them(tmp_path):
    train = cluener(tmp_path, *([PLAIN_LINE, BOOK_LINE] * 5))
    replay = write(tmp_path, "old.conll", "张 B-name\n伟 I-name\n\n")
    cfg = data_cfg(train_file=str(train), nested="keep", replay_file=str(replay), replay_ratio=0.1, test_ratio=0.0)
    splits, _ = data.load_splits(cfg)
    assert splits["train"]["spans"][-1] == [{"type": "name", "start": 0, "end": 2}]
    assert splits["train"]["tokens"][-1] == ["张", "伟"]
