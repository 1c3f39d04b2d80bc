"""Label Studio's full JSON export read as span records: a list of tasks `{"id", "data": {"text", ...},
"annotations": [{"result": [...], "was_cancelled", "updated_at", ...}], "predictions": [...]}`.

Each task becomes `{"text", "entities": [[start, end, type], ...], "document_id", "sentence_id"}` (the ids from
the task's `data`, where `nertune export-annotations` puts them), which `json_records.read_json` tags like any
span record. The latest annotation that is not cancelled wins (`updated_at`, then `created_at`, then its place
in the list); a task without one is skipped and counted (`LabelStudioStats`). Predictions are never read: they
are the model's suggestions, not labels. Label Studio's other exports (JSON-MIN, CoNLL) are read elsewhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nertune.data.errors import DataError

logger = logging.getLogger(__name__)

TEXT_RESULT_TYPES = ("labels",)  # result types that hold character spans; choices, relations ... are ignored


@dataclass
class LabelStudioStats:
    """Tasks read from one export and the ones skipped (no annotation, or every annotation cancelled)."""

    tasks: int = 0
    skipped: list[str] = field(default_factory=list)  # "task <id>" of each skipped task

    def log(self, path: str | Path) -> None:
        if self.tasks:
            shown = ", ".join(self.skipped[:5]) + (" ..." if len(self.skipped) > 5 else "")
            logger.info(
                "%s: Label Studio export, %d tasks; %d skipped without a non-cancelled annotation%s",
                path,
                self.tasks,
                len(self.skipped),
                f" ({shown})" if self.skipped else "",
            )


def is_label_studio_task(record: Any) -> bool:
    """A task of Label Studio's full JSON export (not a JSON-MIN record, which has no `annotations`)."""
    return isinstance(record, dict) and isinstance(record.get("data"), dict) and "annotations" in record


def _latest_annotation(annotations: list[dict]) -> dict | None:
    usable = [(i, a) for i, a in enumerate(annotations) if not a.get("was_cancelled")]
    if not usable:
        return None
    # ISO 8601 times as Label Studio writes them sort as strings.
    return max(usable, key=lambda ia: (str(ia[1].get("updated_at") or ""), str(ia[1].get("created_at") or ""), ia[0]))[
        1
    ]


def _result_spans(result: Any, where: str, path: Path, line: int | None) -> list[list]:
    if not isinstance(result, list):
        raise DataError(f"{where}'result' must be a list of regions, got {result!r:.80}", path, line)
    spans = []
    for n, region in enumerate(result):
        if not isinstance(region, dict):
            raise DataError(f"{where}result {n}: expected an object, got {region!r:.80}", path, line)
        if region.get("type") not in TEXT_RESULT_TYPES:
            continue
        value = region.get("value")
        labels = value.get("labels") if isinstance(value, dict) else None
        start, end = (value.get("start"), value.get("end")) if isinstance(value, dict) else (None, None)
        offsets_ok = all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end))
        if not offsets_ok or not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise DataError(
                f'{where}result {n}: expected "value": {{"start": int, "end": int, "labels": [type, ...]}}, '
                f"got {value!r:.120}",
                path,
                line,
            )
        spans += [[start, end, label] for label in labels]
    return spans


def task_where(task: dict, where: str) -> str:
    """The error prefix of a task: its place in the file and Label Studio's task id."""
    task_id = task.get("id")
    return f"{where.rstrip(': ')} (Label Studio task {task_id}): " if task_id is not None else where


def label_studio_record(
    task: dict, where: str, path: Path, line: int | None, stats: LabelStudioStats
) -> dict[str, Any] | None:
    """The span record of one exported task, or None (counted in `stats`) for a task without an annotation;
    `where` is `task_where`'s prefix."""
    task_id = task.get("id")
    stats.tasks += 1
    annotations = task["annotations"]
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise DataError(f"{where}'annotations' must be a list of objects, got {annotations!r:.80}", path, line)
    annotation = _latest_annotation(annotations)
    if annotation is None:
        stats.skipped.append(f"task {task_id}" if task_id is not None else where.rstrip(": "))
        return None
    data = task["data"]
    text = data.get("text")
    if not isinstance(text, str):
        raise DataError(
            f"{where}'data' needs the annotated text under 'text' (a string); keys: {sorted(data)!r}", path, line
        )
    record: dict[str, Any] = {"text": text, "entities": _result_spans(annotation.get("result"), where, path, line)}
    for key in ("document_id", "sentence_id"):
        if key in data:
            record[key] = data[key]
    return record
