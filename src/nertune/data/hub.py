"""Hugging Face Hub datasets brought to the data contract."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import datasets

from nertune.data.contract import FEATURES, TAG_FIELDS, TagChecker, tag_strings
from nertune.data.errors import DataError

SPLIT_ALIASES = {
    "validation": "validation",
    "dev": "validation",
    "valid": "validation",
    "val": "validation",
    "train": "train",
    "test": "test",
}


def load_hub_dataset(
    name: str,
    config: str | None = None,
    revision: str | None = None,
    tag_column_name: str | None = None,
    label_names: Sequence[str] | None = None,
    tokens_column_name: str | None = None,
) -> datasets.DatasetDict:
    """Load a Hub dataset with `datasets.load_dataset` (a local dir written by `save_to_disk` with
    `datasets.load_from_disk`) and bring every split to the data contract.

    The words are in `tokens_column_name` (`data.tokens_field`), else `tokens`; the tags in
    `tag_column_name` (`data.tags_field`), else the first of `ner_tags`, `tags`, `labels`. ClassLabel
    ids become their names; plain integer ids need `label_names`. Split names `dev`, `valid` and
    `val` become `validation`; other columns (pos_tags, id, ...) are dropped.
    """
    what = (
        f"Hub dataset {name!r}"
        + (f" config {config!r}" if config else "")
        + (f" revision {revision!r}" if revision else "")
    )
    try:
        if (Path(name) / datasets.config.DATASETDICT_JSON_FILENAME).is_file():
            raw = datasets.load_from_disk(name)
        else:
            raw = datasets.load_dataset(name, config, revision=revision)
    except (OSError, ValueError, ConnectionError) as err:
        raise DataError(f"could not load {what} (data.dataset_name): {err}") from err
    if not isinstance(raw, datasets.DatasetDict):
        raise DataError(f"{what}: expected a DatasetDict of splits, got {type(raw).__name__}")
    out = {}
    for split, ds in raw.items():
        target = SPLIT_ALIASES.get(split, split)
        if target in out:
            raise DataError(f"{what}: splits {sorted(raw)} give two {target!r} splits")
        out[target] = _hub_split(ds, f"{what} split {split!r}", tokens_column_name, tag_column_name, label_names)
    return datasets.DatasetDict(out)


def _hub_split(
    ds: datasets.Dataset,
    what: str,
    tokens_column_name: str | None,
    tag_column_name: str | None,
    label_names: Sequence[str] | None,
) -> datasets.Dataset:
    tokens_col = tokens_column_name or "tokens"
    if tokens_col not in ds.column_names:
        raise DataError(
            f"{what}: no {tokens_col!r} column of words (columns: {ds.column_names}); "
            "set data.tokens_field to the column that holds them"
        )
    candidates = [tag_column_name] if tag_column_name else list(TAG_FIELDS)
    tag_col = next((c for c in candidates if c in ds.column_names), None)
    if tag_col is None:
        raise DataError(
            f"{what}: no tag column {candidates} (columns: {ds.column_names}); "
            "set data.tags_field to the column that holds the tags"
        )
    feature = getattr(ds.features[tag_col], "feature", None)
    if isinstance(feature, datasets.ClassLabel):
        label_names = feature.names  # the dataset's own names win over the recipe's
    check_tag = TagChecker()
    has_doc = "document_id" in ds.column_names

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        tags = [
            tag_strings(t, label_names, f"{what} example {i}: ", None, None, check_tag)
            for t, i in zip(batch[tag_col], indices)
        ]
        docs = [str(d) for d in batch["document_id"]] if has_doc else [""] * len(indices)
        return {
            "tokens": batch[tokens_col],
            "ner_tags": tags,
            "document_id": docs,
            "sentence_id": indices,
            "line": [0] * len(indices),
        }

    return ds.map(
        convert,
        batched=True,
        with_indices=True,
        remove_columns=ds.column_names,
        features=FEATURES,
        desc="converting tags",
    )
