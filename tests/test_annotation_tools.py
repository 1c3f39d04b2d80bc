"""Predictions -> Label Studio / Doccano imports -> (corrected) exports read back as training data: the same
spans and ids come back; malformed exports are errors naming the task or line."""

from __future__ import annotations

import json
import logging

import pytest

from nertune.cli import main
from nertune.data import DataError, read_split_file
from nertune.data.annotation_export import export_annotations
from nertune.data.spans import tag_words_from_spans

PREDICTIONS = [
    {
        "id": "a",
        "document_id": "doc1",
        "sentence_id": 7,
        "text": "John Smith lives in Paris.",
        "entities": [
            {"type": "PER", "text": "John Smith", "start": 0, "end": 10, "score": 0.9},
            {"type": "LOC", "text": "Paris", "start": 20, "end": 25, "score": 0.6},
        ],
    },
    {"id": "b", "document_id": "doc1", "sentence_id": 8, "text": "Nothing here.", "entities": []},
    {
        "id": "c",
        "document_id": "doc2",
        "sentence_id": 3,
        "text": "Mary works at NASA",
        "entities": [
            {"type": "PER", "text": "Mary", "start": 0, "end": 4, "score": 0.8},
            {"type": "ORG", "text": "NASA", "start": 14, "end": 18, "score": 0.7},
        ],
    },
]


def expected_tags(record: dict) -> tuple[list[str], list[str]]:
    spans = [(e["start"], e["end"], e["type"]) for e in record["entities"]]
    tagged = tag_words_from_spans(record["text"], spans)
    return tagged.words, tagged.tags


def write_predictions(tmp_path, records=PREDICTIONS):
    path = tmp_path / "pred.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def accept_predictions(tasks: list[dict]) -> list[dict]:
    """What Label Studio exports after an annotator accepted every pre-annotation (ids as it numbers them)."""
    return [
        {
            "id": 100 + i,
            **task,
            "annotations": [
                {
                    "id": 1,
                    "result": task["predictions"][0]["result"],
                    "was_cancelled": False,
                    "updated_at": "2024-01-01",
                }
            ],
        }
        for i, task in enumerate(tasks)
    ]


def test_label_studio_tasks_carry_predictions_scores_and_ids(tmp_path):
    out = tmp_path / "tasks.json"
    assert export_annotations(write_predictions(tmp_path), out, "label-studio", model_version="m1") == 3
    tasks = json.loads(out.read_text())
    first = tasks[0]
    assert first["data"] == {"text": PREDICTIONS[0]["text"], "document_id": "doc1", "sentence_id": 7, "record_id": "a"}
    prediction = first["predictions"][0]
    assert prediction["model_version"] == "m1" and prediction["score"] == 0.6
    region = prediction["result"][1]
    assert region["from_name"] == "label" and region["to_name"] == "text" and region["type"] == "labels"
    assert region["value"] == {"start": 20, "end": 25, "text": "Paris", "labels": ["LOC"]}
    assert region["score"] == 0.6
    assert tasks[1]["predictions"][0]["result"] == [] and "score" not in tasks[1]["predictions"][0]


def test_label_studio_round_trip_gives_the_same_spans_and_ids(tmp_path, caplog):
    out = tmp_path / "tasks.json"
    export_annotations(write_predictions(tmp_path), out, "label-studio")
    tasks = accept_predictions(json.loads(out.read_text()))
    # An annotator fixed task 0 later (a newer annotation wins), cancelled one on task 2, never opened a 4th.
    fixed = json.loads(json.dumps(tasks[0]["annotations"][0]))
    fixed["result"] = fixed["result"][:1]
    fixed["updated_at"] = "2024-02-01"
    tasks[0]["annotations"].append(fixed)
    tasks[2]["annotations"].append({"id": 9, "result": [], "was_cancelled": True, "updated_at": "2025-01-01"})
    tasks.append({"id": 200, "data": {"text": "never labelled"}, "annotations": [], "predictions": []})
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks), encoding="utf-8")

    caplog.set_level(logging.INFO)
    ds = read_split_file(export)
    assert "4 tasks; 1 skipped without a non-cancelled annotation (task 200)" in caplog.text
    assert len(ds) == 3
    want = [expected_tags({**PREDICTIONS[0], "entities": PREDICTIONS[0]["entities"][:1]})]
    want += [expected_tags(r) for r in PREDICTIONS[1:]]
    assert list(zip(ds["tokens"], ds["ner_tags"])) == want
    assert ds["document_id"] == ["doc1", "doc1", "doc2"] and ds["sentence_id"] == [7, 8, 3]


def test_doccano_round_trip_via_the_cli(tmp_path, capsys):
    out = tmp_path / "doccano.jsonl"
    assert (
        main(["export-annotations", str(write_predictions(tmp_path)), "--tool", "doccano", "--output", str(out)]) == 0
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {
        "text": PREDICTIONS[0]["text"],
        "label": [[0, 10, "PER"], [20, 25, "LOC"]],
        "document_id": "doc1",
        "sentence_id": 7,
        "record_id": "a",
    }
    # Doccano's export adds its own id and comments; the meta fields come back at the top level.
    out.write_text("".join(json.dumps({"id": i, **r, "Comments": []}) + "\n" for i, r in enumerate(lines)))
    ds = read_split_file(out)
    assert list(zip(ds["tokens"], ds["ner_tags"])) == [expected_tags(r) for r in PREDICTIONS]
    assert ds["document_id"] == ["doc1", "doc1", "doc2"] and ds["sentence_id"] == [7, 8, 3]


def test_predict_output_without_text_exports_words_and_tags(tmp_path):
    record = {"entities": [{"type": "PER", "start": 0, "end": 4, "score": 0.5}], "words": ["Mary", "."]}
    record["tags"] = ["B-PER", "O"]
    out = tmp_path / "t.json"
    export_annotations(write_predictions(tmp_path, [record]), out, "label-studio")
    task = json.loads(out.read_text())[0]
    assert task["data"]["text"] == "Mary ."
    assert task["predictions"][0]["result"][0]["value"] == {"start": 0, "end": 4, "text": "Mary", "labels": ["PER"]}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"text": "abc", "entities": [{"type": "PER", "start": 1, "end": 9}]}, "pred.jsonl:2: entity 0 [1, 9)"),
        ({"text": "abc", "entities": [{"type": "PER", "start": 0, "end": 1, "text": "x"}]}, "does not match"),
        ({"entities": []}, "pred.jsonl:2: a prediction needs 'text'"),
    ],
)
def test_bad_predictions_name_their_line(tmp_path, record, message):
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace(")", r"\)")):
        export_annotations(write_predictions(tmp_path, [PREDICTIONS[1], record]), tmp_path / "o.json", "doccano")


def ls_task(result, **extra):
    return {"id": 5, "data": {"text": "Mary works"}, "annotations": [{"result": result}], **extra}


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (
            [ls_task([]), ls_task([{"type": "labels", "value": {"start": "0", "end": 4, "labels": ["PER"]}}])],
            r"export.json: record 1 \(Label Studio task 5\): result 0: expected \"value\"",
        ),
        ([{"id": 3, "data": {"txt": "x"}, "annotations": [{"result": []}]}], r"task 3\): 'data' needs the annotated"),
        ([ls_task([{"type": "labels", "value": {"start": 0, "end": 40, "labels": ["PER"]}}])], r"task 5\): entity"),
        ([{"id": 1, "data": {"text": "x"}, "annotations": [{"was_cancelled": True}]}], "no records found \\(1 Label"),
    ],
)
def test_malformed_label_studio_exports_name_the_task(tmp_path, tasks, message):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks), encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_split_file(path)


def test_malformed_doccano_export_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "Mary", "label": [[0, 4, "PER"]]}\n{"text": "Bob", "label": [[0, "3", "PER"]]}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: 'label': expected \[start, end, type\]"):
        read_split_file(path)
