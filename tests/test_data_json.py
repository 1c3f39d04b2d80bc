"""nertune.data.json_records: JSON/JSONL token+tag and span-annotated records; real files in tmp_path."""

from __future__ import annotations

import json

import pytest

from nertune import data
from nertune.data import DataError

from .helpers import data_cfg, write

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


def test_span_annotated_jsonl_doccano_spacy_prodigy(tmp_path):
    # Doccano sequence-labelling export (label: [[start, end, type]]), spaCy-style entities, Prodigy spans
    # with a trailing space inside an entity, and Doccano's newer start_offset/end_offset objects.
    path = write(
        tmp_path,
        "annotations.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": 7, "text": "John Smith lives in New York.", "label": [[0, 10, "PER"], [20, 28, "LOC"]]},
                {"text": "Nothing here", "entities": []},
                {"text": "Visit Paris ", "spans": [{"start": 6, "end": 12, "label": "LOC"}]},
                {
                    "text": "Ask Siemens",
                    "entities": [{"start_offset": 4, "end_offset": 11, "label": "ORG"}],
                    "document_id": "d1",
                },
            ]
        ),
    )
    ds = data.read_split_file(path)
    assert ds["tokens"] == [
        ["John", "Smith", "lives", "in", "New", "York", "."],
        ["Nothing", "here"],
        ["Visit", "Paris"],
        ["Ask", "Siemens"],
    ]
    assert ds["ner_tags"] == [
        ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"],
        ["O", "O"],
        ["O", "B-LOC"],
        ["O", "B-ORG"],
    ]
    assert ds["document_id"] == ["", "", "", "d1"] and ds["line"] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"text": "John", "label": [[0, 9, "PER"]]}, "entity [0, 9) 'PER' is not inside the text (4 characters)"),
        ({"text": "John", "label": [[0, 4, "B PER"]]}, "an entity type must be a non-empty word without spaces"),
        ({"text": "John", "label": ["positive"]}, "'label': expected [start, end, type]"),
        ({"text": "John"}, "a record with 'text' needs its entity spans under one of ['entities', 'spans', 'label']"),
        ({"txt": "John"}, "missing field 'tokens' (or 'text' with entity spans)"),
    ],
)
def test_bad_span_records_name_the_line_and_the_span(tmp_path, record, message):
    path = write(tmp_path, "bad.jsonl", json.dumps(record) + "\n")
    with pytest.raises(DataError) as err:
        data.read_split_file(path)
    assert message in str(err.value) and "bad.jsonl:1" in str(err.value)


def test_span_alignment_expand_takes_whole_words_split_splits_and_strict_refuses(tmp_path):
    path = write(tmp_path, "a.jsonl", json.dumps({"text": "Visit #Paris today", "label": [[7, 12, "LOC"]]}) + "\n")
    ds = data.read_split_file(path, span_alignment="expand")
    assert ds["tokens"] == [["Visit", "#Paris", "today"]] and ds["ner_tags"] == [["O", "B-LOC", "O"]]
    ds = data.read_split_file(path)  # split, the default
    assert ds["tokens"] == [["Visit", "#", "Paris", "today"]] and ds["ner_tags"] == [["O", "O", "B-LOC", "O"]]
    with pytest.raises(DataError) as err:
        data.read_split_file(path, span_alignment="strict")
    assert str(err.value) == (
        f"{path}:1: entity [7, 12) 'LOC' 'Paris' cuts the word '#Paris' at [6, 12); fix the span, or set "
        "data.span_alignment=split to split the word there (expand takes whole words)"
    )


def test_overlapping_spans_are_refused_with_nested_error(tmp_path):
    record = {"text": "John Smith", "label": [[0, 10, "PER"], [5, 10, "PER"]]}
    path = write(tmp_path, "bad.jsonl", json.dumps({"text": "x", "label": []}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError) as err:
        data.read_split_file(path, nested="error")
    assert str(err.value).startswith(
        f"{path}:2: entity [5, 10) 'PER' 'Smith' overlaps another entity [0, 10) 'PER' 'John Smith'"
    )
    assert "data.nested=outermost" in str(err.value)


CLUENER_RECORD = {
    "text": "浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。",
    "label": {"name": {"叶老桂": [[9, 11]]}, "company": {"浙商银行": [[0, 3]]}},
}


def test_cluener_record_reads_as_characters_and_iob2_tags(tmp_path):
    # CLUENER2020's train.json: JSONL in a .json file, end offsets inclusive. A single record is a record too.
    for lines in (1, 2):
        path = write(tmp_path, f"train{lines}.json", (json.dumps(CLUENER_RECORD, ensure_ascii=False) + "\n") * lines)
        ds = data.read_split_file(path)
        assert ds["tokens"][0] == list(CLUENER_RECORD["text"])
        tags = ds["ner_tags"][0]
        assert tags[:5] == ["B-company", "I-company", "I-company", "I-company", "O"]
        assert tags[8:13] == ["O", "B-name", "I-name", "I-name", "O"] and set(tags[13:]) == {"O"}
    empty = write(tmp_path, "empty_label.json", json.dumps({"text": "今天", "label": {}}, ensure_ascii=False))
    assert data.read_split_file(empty)["ner_tags"] == [["O", "O"]]


@pytest.mark.parametrize(
    "label, message",
    [
        (
            {"name": {"叶老": [[9, 11]]}},
            "'name' mention '叶老' at [9, 11] (end inclusive) does not match the text there: '叶老桂'",
        ),
        (
            {"name": {"叶老桂": [[30, 32]]}},
            "'name' mention '叶老桂' at [30, 32] (end inclusive) is not inside the text (32 characters)",
        ),
        ({"name": {"叶老桂": [[11, 9]]}}, "at [11, 9] (end inclusive) is not inside the text"),
        ({"name": {"叶老桂": [9, 11]}}, "expected [start, end] integer offsets (end inclusive), got 9"),
        ({"name": {"叶老桂": []}}, "'name' mention '叶老桂' needs a list of [start, end] offsets"),
        ({"name": ["叶老桂"]}, "type 'name' must map each mention to its [[start, end], ...] offsets"),
    ],
)
def test_bad_cluener_spans_name_file_line_and_mention(tmp_path, label, message):
    good = json.dumps(CLUENER_RECORD, ensure_ascii=False)
    bad = json.dumps({"text": CLUENER_RECORD["text"], "label": label}, ensure_ascii=False)
    path = write(tmp_path, "dev.json", f"{good}\n{bad}\n")
    with pytest.raises(DataError) as err:
        data.read_split_file(path)
    assert str(err.value).startswith(f"{path}:2: ") and message in str(err.value), str(err.value)


def test_doccano_label_list_is_still_read_as_spans(tmp_path):
    path = write(tmp_path, "doccano.jsonl", json.dumps({"text": "EU rejects", "label": [[0, 2, "ORG"]]}))
    assert data.read_split_file(path)["ner_tags"] == [["B-ORG", "O"]]


def test_json_with_other_field_names_reads_through_the_recipe(tmp_path):
    """`data.tokens_field` / `data.tags_field` name a JSON corpus's own fields; a missing one names the key."""
    from nertune.data import load_splits

    lines = [json.dumps({"words": ["John", "lives", "in", "Paris"], "bio": ["B-PER", "O", "O", "B-LOC"]})] * 12
    train = write(tmp_path, "train.jsonl", "\n".join(lines) + "\n")
    splits, _ = load_splits(data_cfg(train_file=str(train), tokens_field="words", tags_field="bio"))
    assert splits["train"][0]["tokens"] == ["John", "lives", "in", "Paris"]
    assert splits["train"][0]["ner_tags"] == ["B-PER", "O", "O", "B-LOC"]
    with pytest.raises(DataError, match=r"train.jsonl:1: missing field 'tokens'.*data.tokens_field"):
        load_splits(data_cfg(train_file=str(train)))
    with pytest.raises(DataError, match=r"train.jsonl:1: missing tags: expected 'tags'.*data.tags_field"):
        load_splits(data_cfg(train_file=str(train), tokens_field="words", tags_field="tags"))
