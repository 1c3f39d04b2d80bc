"""Model predictions as annotation-tool imports: Label Studio tasks with pre-annotations (`predictions`) and
Doccano JSONL, so annotators correct the model instead of labelling from scratch (`nertune export-annotations`).

The input is the JSONL of `nertune predict` or `nertune select`: per line `text` and `entities`
(`{"type", "start", "end", "score"}` in characters), optional `id`, `document_id`, `sentence_id`. A line without
`text` (predict output has `words` and `tags` only) is exported as its words joined by single spaces, entities
from its tags. The ids go into the task's `data` (Label Studio) or top-level meta fields (Doccano), where the
readers (`annotation_tools`, `json_records.read_json`) find them again when the corrected export is read back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nertune import schemes
from nertune.data.errors import DataError
from nertune.data.json_records import iter_json_lines

logger = logging.getLogger(__name__)

TOOLS = ("label-studio", "doccano")
ID_FIELDS = ("document_id", "sentence_id")  # kept for reading back; `id` is kept as `record_id`


def _is_offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _from_words(record: dict, path: Path, line: int) -> tuple[str, list[dict]]:
    """Text and character entities of a predict record that has `words` and `tags` but no `text`."""
    words, tags = record.get("words"), record.get("tags")
    if not (isinstance(words, list) and isinstance(tags, list) and len(words) == len(tags)):
        raise DataError(
            "a prediction needs 'text' and 'entities' (character offsets), or 'words' and 'tags' of the same "
            f"length; keys: {sorted(record)!r}",
            path,
            line,
        )
    starts, offset = [], 0
    for word in words:
        starts.append(offset)
        offset += len(word) + 1
    entities = record.get("entities") or []
    spans = schemes.tags_to_spans(tags, "BIOES")  # reads IOB2 and BIOES alike
    # The entities are the same spans in the same order: take their scores when the count agrees.
    scores = [e.get("score") for e in entities] if len(entities) == len(spans) else [None] * len(spans)
    out = [
        {"type": type_, "start": starts[i], "end": starts[j - 1] + len(words[j - 1]), "score": score}
        for (type_, i, j), score in zip(spans, scores)
    ]
    return " ".join(words), out


def prediction_records(path: str | Path) -> Iterator[tuple[int, str, list[dict], dict[str, Any]]]:
    """`(line, text, entities, ids)` per prediction line, every entity checked against its text."""
    path = Path(path)
    for line, record in iter_json_lines(path):
        if not isinstance(record, dict):
            raise DataError(f"expected a prediction object, got {record!r:.80}", path, line)
        if isinstance(record.get("text"), str):
            text, entities = record["text"], record.get("entities", [])
        else:
            text, entities = _from_words(record, path, line)
        if not isinstance(entities, list):
            raise DataError(f"'entities' must be a list, got {entities!r:.80}", path, line)
        for n, entity in enumerate(entities):
            ok = isinstance(entity, dict) and _is_offset(entity.get("start")) and _is_offset(entity.get("end"))
            if not ok or not isinstance(entity.get("type"), str):
                raise DataError(f'entity {n}: expected {{"type", "start", "end"}}, got {entity!r:.80}', path, line)
            if not 0 <= entity["start"] < entity["end"] <= len(text):
                raise DataError(
                    f"entity {n} [{entity['start']}, {entity['end']}) is not inside the text ({len(text)} "
                    "characters); predictions of pre-split tokens have word offsets: export the 'words' record",
                    path,
                    line,
                )
            if "text" in entity and text[entity["start"] : entity["end"]] != entity["text"]:
                raise DataError(
                    f"entity {n} {entity['text']!r} does not match the text at [{entity['start']}, "
                    f"{entity['end']}): {text[entity['start'] : entity['end']]!r}",
                    path,
                    line,
                )
        ids = {key: record[key] for key in ID_FIELDS if key in record}
        if "id" in record:
            ids["record_id"] = record["id"]
        yield line, text, entities, ids


def label_studio_task(
    text: str, entities: list[dict], ids: dict[str, Any], model_version: str, from_name: str, to_name: str
) -> dict[str, Any]:
    """One Label Studio task: the text (and ids) as `data`, the entities as one prediction."""
    result = []
    for n, entity in enumerate(entities):
        region: dict[str, Any] = {
            "id": f"ent{n}",
            "from_name": from_name,
            "to_name": to_name,
            "type": "labels",
            "value": {
                "start": entity["start"],
                "end": entity["end"],
                "text": text[entity["start"] : entity["end"]],
                "labels": [entity["type"]],
            },
        }
        if isinstance(entity.get("score"), (int, float)):
            region["score"] = float(entity["score"])
        result.append(region)
    prediction: dict[str, Any] = {"model_version": model_version, "result": result}
    scores = [region["score"] for region in result if "score" in region]
    if scores:
        prediction["score"] = min(scores)  # a task is as uncertain as its least certain entity (sorting in the UI)
    return {"data": {"text": text, **ids}, "predictions": [prediction]}


def doccano_record(text: str, entities: list[dict], ids: dict[str, Any]) -> dict[str, Any]:
    """One Doccano sequence-labelling line; the ids as meta fields."""
    return {"text": text, "label": [[e["start"], e["end"], e["type"]] for e in entities], **ids}


def export_annotations(
    predictions: str | Path,
    output: str | Path,
    tool: str,
    *,
    model_version: str = "nertune",
    from_name: str = "label",
    to_name: str = "text",
) -> int:
    """Write `predictions` (predict/select JSONL) as a Label Studio task list (JSON) or Doccano JSONL; returns
    the number of records. `from_name`/`to_name`: the names of the `<Labels>` and `<Text>` tags of the Label
    Studio project's labeling config."""
    if tool not in TOOLS:
        raise DataError(f"unknown annotation tool {tool!r}; expected one of {list(TOOLS)}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(output, "w", encoding="utf-8") as f:
        if tool == "label-studio":
            f.write("[")
        for _, text, entities, ids in prediction_records(predictions):
            if tool == "label-studio":
                task = label_studio_task(text, entities, ids, model_version, from_name, to_name)
                f.write(("," if n else "") + "\n" + json.dumps(task, ensure_ascii=False))
            else:
                f.write(json.dumps(doccano_record(text, entities, ids), ensure_ascii=False) + "\n")
            n += 1
        if tool == "label-studio":
            f.write("\n]\n")
    logger.info("%s: %d %s records -> %s", predictions, n, tool, output)
    return n
