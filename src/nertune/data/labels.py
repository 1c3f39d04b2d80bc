"""Renaming entity types (`data.label_map`): cross-dataset evaluation and training."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import datasets

from nertune import schemes
from nertune.data.contract import SPANS, SPANS_FEATURE
from nertune.data.errors import DataError

logger = logging.getLogger(__name__)


def apply_label_map(
    sentences: Sequence[Sequence[str]], label_map: Mapping[str, str] | None
) -> tuple[list[list[str]], dict[str, int]]:
    """Rename the entity TYPES of tag sequences: ``{"PERSON": "PER"}`` turns B-PERSON into B-PER.

    A type mapped to ``"O"`` becomes O (all its words). Types not in the map are kept. Returns the new
    sequences and how many tags each map key renamed (0 for keys the data does not have). Renaming keeps
    a valid IOB2/BIOES sequence valid (every entity keeps its own B-/S-). Raises ValueError for a
    malformed map (the key "O", or a target that is not a usable type name).
    """
    if not label_map:
        return [list(tags) for tags in sentences], {}
    for source, target in label_map.items():
        if source == "O":
            raise ValueError("data.label_map: 'O' is not an entity type and cannot be renamed")
        if target != "O":
            try:
                schemes.parse_tag(f"B-{target}")
            except schemes.InvalidTagError as err:
                raise ValueError(f"data.label_map: {source!r} -> {target!r} is not a usable type: {err}") from None
    used = {source: 0 for source in label_map}
    out = []
    for tags in sentences:
        row = []
        for tag in tags:
            prefix, type_ = schemes.parse_tag(tag)
            if type_ is not None and type_ in label_map:
                used[type_] += 1
                target = label_map[type_]
                row.append("O" if target == "O" else f"{tag.partition('-')[0]}-{target}")
            else:
                row.append(tag)
        out.append(row)
    return out, used


def rename_entity_types(dataset: datasets.Dataset, label_map: Mapping[str, str] | None, split: str) -> datasets.Dataset:
    """The split with its entity types renamed by `data.label_map` (logged; unknown map keys warned)."""
    if not label_map:
        return dataset
    types = sorted({t.partition("-")[2] for tags in dataset["ner_tags"] for t in tags if t != "O"})
    try:
        tags, used = apply_label_map(dataset["ner_tags"], label_map)
    except ValueError as err:
        raise DataError(str(err)) from None
    unused = [k for k, n in used.items() if n == 0]
    if unused:
        logger.warning(
            "data.label_map: %s not among the types of split %r (%s); keys are entity types without the B-/I- prefix",
            unused,
            split,
            types,
        )
    renamed = {k: f"{label_map[k]} ({n} tags)" for k, n in used.items() if n}
    if renamed:
        logger.info("data.label_map renamed %s", renamed)
    dataset = dataset.remove_columns("ner_tags").add_column("ner_tags", tags)
    if SPANS in dataset.column_names:  # every level of nested entities is renamed the same way
        renamed_spans = [
            [{**s, "type": label_map.get(s["type"], s["type"])} for s in row if label_map.get(s["type"]) != "O"]
            for row in dataset[SPANS]
        ]
        dataset = dataset.remove_columns(SPANS).add_column(SPANS, renamed_spans, feature=SPANS_FEATURE)
    return dataset
