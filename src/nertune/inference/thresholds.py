"""Per-type score thresholds (`--threshold PER=0.6` of predict and serve): an entity whose score is below its
type's threshold is dropped, and its words' tags become O, so entities and tags keep telling the same story."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from nertune.errors import RequestError
from nertune.schemes import parse_tag, tags_to_spans


def entity_types(labels: Iterable[str]) -> list[str]:
    """The entity types of a model's labels (B-PER, I-PER -> PER), sorted."""
    return sorted({parse_tag(label)[1] for label in labels if label != "O"} - {None, ""})


def parse_thresholds(items: Sequence[str] | None, labels: Iterable[str]) -> dict[str, float]:
    """`["PER=0.6", ...]` -> `{"PER": 0.6}`, checked against the model's `labels`: an unknown type, a missing
    `=`, or a value outside [0, 1] is an error naming what is allowed."""
    known = entity_types(labels)
    thresholds: dict[str, float] = {}
    for item in items or ():
        type_, sep, value = item.partition("=")
        type_ = type_.strip()
        if not sep or not type_:
            raise RequestError(f"--threshold {item!r}: expected TYPE=SCORE, e.g. PER=0.6")
        if type_ not in known:
            raise RequestError(f"--threshold {item!r}: the model has no entity type {type_!r}; known types: {known}")
        try:
            score = float(value)
        except ValueError:
            raise RequestError(f"--threshold {item!r}: {value!r} is not a number") from None
        if not 0.0 <= score <= 1.0:
            raise RequestError(f"--threshold {item!r}: the score must be between 0 and 1, got {score}")
        thresholds[type_] = score
    return thresholds


def apply_thresholds(
    results: Sequence[dict[str, Any]], thresholds: dict[str, float], scheme: str
) -> list[dict[str, Any]]:
    """`NerPredictor` results (`{"entities", "words", "tags"}`, entities in the order of the tags' spans)
    without the entities scored below their type's threshold; their tags become O. New dicts; types
    without a threshold are kept."""
    if not thresholds:
        return list(results)
    kept_results = []
    for result in results:
        tags = list(result["tags"])
        spans = tags_to_spans(tags, scheme)
        entities = []
        for entity, (_, start, end) in zip(result["entities"], spans):
            if entity["score"] >= thresholds.get(entity["type"], 0.0):
                entities.append(entity)
            else:
                tags[start:end] = ["O"] * (end - start)
        kept_results.append({**result, "entities": entities, "tags": tags})
    return kept_results
