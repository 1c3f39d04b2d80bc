"""Splits for training and evaluation: loading the recipe's data, carving missing splits out of train,
converting tags to the training scheme, and checking splits and labels."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets

from nertune import schemes
from nertune.data.contract import FEATURES, SPANS, SPANS_FEATURE, spans_of_tags
from nertune.data.errors import DataError
from nertune.data.formats import read_split_file, resolve_data_path
from nertune.data.hub import load_hub_dataset
from nertune.data.labels import rename_entity_types
from nertune.data.scheme_detection import detect_scheme
from nertune.data.spans import SpanStats

logger = logging.getLogger(__name__)


def split_dataset(ds: datasets.Dataset, validation_ratio: float, test_ratio: float, seed: int) -> datasets.DatasetDict:
    """Split one corpus into `train`, `validation` and `test`, deterministically for a `seed`.

    Whole documents are assigned to splits when any document_id is set (so document context
    never leaks across splits), else single sentences; with fewer documents than splits it falls
    back to sentences, with a warning. A split with ratio 0 is left out; the others get
    `max(1, round(ratio * units))` units. Each split keeps the original order and `sentence_id`s.
    """
    ratios = {"validation": validation_ratio, "test": test_ratio}
    for name, ratio in ratios.items():
        if not 0 <= ratio < 1:
            raise DataError(f"data.{name}_ratio must be in [0, 1), got {ratio}")
    if validation_ratio + test_ratio >= 1:
        raise DataError(f"data.validation_ratio + data.test_ratio must be < 1, got {validation_ratio} + {test_ratio}")
    wanted = {name: ratio for name, ratio in ratios.items() if ratio > 0}

    doc_ids = ds["document_id"]
    # Units: lists of row indices, in order of first appearance.
    units: dict[str, list[int]] = {}
    if any(doc_ids):
        for row, doc in enumerate(doc_ids):
            units.setdefault(doc, []).append(row)
        if len(units) <= len(wanted):
            logger.warning(
                "only %d document(s) for %d splits: splitting by sentence instead", len(units), len(wanted) + 1
            )
            units = {}
    if not units:
        units = {str(row): [row] for row in range(len(ds))}
    groups = list(units.values())

    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    rows: dict[str, list[int]] = {}
    start = 0
    for name, ratio in wanted.items():
        count = max(1, round(ratio * len(groups)))
        rows[name] = [r for g in order[start : start + count] for r in groups[g]]
        start += count
    rows["train"] = [r for g in order[start:] for r in groups[g]]
    if not rows["train"]:
        raise DataError(
            f"{len(groups)} sentence(s)/document(s) are too few to carve out "
            f"{', '.join(wanted)} and keep a training split; give the splits as files"
        )
    return datasets.DatasetDict({name: ds.select(sorted(rows[name])) for name in ("train", *wanted)})


def _read_configured_file(path: Path, data_cfg: Any, key: str, stats: SpanStats | None = None) -> datasets.Dataset:
    """`read_split_file` with the reading options of the recipe's `data` section."""
    return read_split_file(
        path,
        data_cfg.format,
        key=key,
        token_column=data_cfg.token_column,
        tag_column=data_cfg.tag_column,
        delimiter=data_cfg.delimiter,
        label_names=data_cfg.label_names,
        comment_prefix=data_cfg.comment_prefix,
        tokens_field=getattr(data_cfg, "tokens_field", None),
        tags_field=getattr(data_cfg, "tags_field", None),
        span_alignment=data_cfg.span_alignment,
        encoding=data_cfg.encoding,
        nested=getattr(data_cfg, "nested", "outermost"),
        nested_tag_columns=getattr(data_cfg, "nested_tag_columns", None),
        strip_token_suffix=getattr(data_cfg, "strip_token_suffix", "none"),
        stats=stats,
    )


def validate_splits(splits: datasets.DatasetDict) -> None:
    """Check that there is a `train` split, that no split is empty and all have the contract's columns."""
    if "train" not in splits:
        raise DataError(f"no 'train' split (splits: {list(splits)})")
    for name, ds in splits.items():
        missing = [column for column in FEATURES if column not in ds.column_names]
        if missing:
            raise DataError(f"split {name!r} lacks columns {missing}")
        if len(ds) == 0:
            raise DataError(f"split {name!r} is empty")


def _entity_type(tag: str) -> str | None:
    return schemes.parse_tag(tag)[1]


def check_labels(
    splits: datasets.DatasetDict, policy: str = "error", sources: Mapping[str, str | Path] | None = None
) -> datasets.DatasetDict:
    """Handle entity types of non-train splits that never occur in `train`.

    `policy="error"` raises a DataError naming the split, the type and where it first appears
    (`sources` maps split names to their files, for `file:line`); `policy="O"` maps those tags to
    `O` and logs a warning with the counts. Returns the (possibly updated) splits.
    """
    if policy not in ("error", "O"):
        raise DataError(f"data.unseen_label_policy must be 'error' or 'O', got {policy!r}")
    sources = sources or {}
    seen = {_entity_type(tag) for tags in splits["train"]["ner_tags"] for tag in tags}
    out = dict(splits)
    for name, ds in splits.items():
        if name == "train":
            continue
        unseen: dict[str, int] = {}
        for row, tags in enumerate(ds["ner_tags"]):
            for position, tag in enumerate(tags):
                type_ = _entity_type(tag)
                if type_ in seen:
                    continue
                if policy == "error":
                    example = ds[row]
                    where = (
                        f"{sources[name]}:{example['line']}"
                        if name in sources and example["line"]
                        else f"sentence_id {example['sentence_id']}"
                    )
                    raise DataError(
                        f"split {name!r} has entity type {type_!r} (tag {tag!r}, word {position} "
                        f"{example['tokens'][position]!r} of the sentence at {where}) that never "
                        "occurs in train; fix the data, or set data.unseen_label_policy=O to map "
                        "such tags to O"
                    )
                unseen[type_] = unseen.get(type_, 0) + 1
        if unseen:
            logger.warning(
                "split %r: mapping %d tag(s) of entity types unseen in train to O: %s (data.unseen_label_policy=O)",
                name,
                sum(unseen.values()),
                unseen,
            )
            drop = set(unseen)
            out[name] = ds.map(
                lambda batch, drop=drop: {
                    "ner_tags": [["O" if _entity_type(t) in drop else t for t in tags] for tags in batch["ner_tags"]]
                },
                batched=True,
                desc="unseen types to O",
            )
    return datasets.DatasetDict(out)


def load_splits(
    data_cfg: Any, base_dir: str | Path = ".", *, span_stats: dict[str, SpanStats] | None = None
) -> tuple[datasets.DatasetDict, str]:
    """Load the recipe's data as `train`/`validation`/`test` splits in the training scheme.

    Sources: `data_cfg.dataset_name` (Hub) and/or files; a file given for a split replaces the Hub's.
    Relative paths resolve against `base_dir`; `pkg://package/file` names a file in an installed
    package. Any split neither on the Hub nor given as a file is carved out of train with its ratio
    (ratio 0: no such split). The input scheme (`tag_scheme`, or detected on train when "auto")
    is logged, every split is converted to `train_scheme`, and unseen labels are handled by
    `unseen_label_policy`. Returns `(splits, source_scheme)`.
    `span_stats`, when given, is filled with a `SpanStats` per data file key (`data.train_file`, ...) read from
    character spans: words split at span boundaries, nested spans dropped or kept (for metrics.json).
    """
    splits: dict[str, datasets.Dataset] = {}
    sources: dict[str, str] = {}
    if data_cfg.dataset_name:
        splits.update(
            load_hub_dataset(
                data_cfg.dataset_name,
                data_cfg.dataset_config,
                data_cfg.dataset_revision,
                label_names=data_cfg.label_names,
                tokens_column_name=getattr(data_cfg, "tokens_field", None),
                tag_column_name=getattr(data_cfg, "tags_field", None),
            )
        )
    elif not data_cfg.train_file:
        raise DataError("no training data: set data.dataset_name or data.train_file")
    for split in ("train", "validation", "test"):
        file = getattr(data_cfg, f"{split}_file")
        if not file:
            continue
        key = f"data.{split}_file"
        path = resolve_data_path(file, base_dir, key)
        stats = SpanStats(kept_nested=getattr(data_cfg, "nested", "outermost") == "keep")
        splits[split] = _read_configured_file(path, data_cfg, key, stats)
        sources[split] = str(path)
        if span_stats is not None and stats.records:
            span_stats[key] = stats
    if "train" not in splits:
        raise DataError(
            f"Hub dataset {data_cfg.dataset_name!r} has no train split (splits: {sorted(splits)}); set data.train_file"
        )

    missing = {s: getattr(data_cfg, f"{s}_ratio") for s in ("validation", "test") if s not in splits}
    if any(missing.values()):
        carved = split_dataset(
            splits["train"], missing.get("validation", 0.0), missing.get("test", 0.0), data_cfg.split_seed
        )
        splits.update(carved)
        for name in carved:
            if "train" in sources:
                sources[name] = sources["train"]
        logger.info(
            "carved %s out of train (seed %d): %s",
            ", ".join(n for n in carved if n != "train"),
            data_cfg.split_seed,
            {n: len(d) for n, d in carved.items()},
        )

    label_map = getattr(data_cfg, "label_map", None)
    splits = {name: rename_entity_types(ds, label_map, name) for name, ds in splits.items()}
    try:
        target = schemes.normalize_scheme(data_cfg.train_scheme)
        source = (
            detect_scheme(splits["train"]["ner_tags"])
            if data_cfg.tag_scheme == "auto"
            else schemes.normalize_scheme(data_cfg.tag_scheme)
        )
    except ValueError as err:
        raise DataError(f"data.tag_scheme/data.train_scheme: {err}") from None
    logger.info(
        "input tag scheme: %s (%s); training scheme: %s",
        source,
        "detected on train" if data_cfg.tag_scheme == "auto" else "from data.tag_scheme",
        target,
    )
    for name, ds in splits.items():
        splits[name] = _convert_split(ds, name, source, target, sources.get(name))
    if getattr(data_cfg, "replay_file", None):
        splits["train"] = mix_replay(splits["train"], data_cfg, base_dir, target)

    splits = datasets.DatasetDict(splits)
    validate_splits(splits)
    return check_labels(splits, data_cfg.unseen_label_policy, sources), source


def mix_replay(train: datasets.Dataset, data_cfg: Any, base_dir: str | Path, target: str) -> datasets.Dataset:
    """Rehearsal: `data.replay_ratio` x len(train) sentences sampled (seed `data.split_seed`) from
    `data.replay_file` (an earlier run's training file, any supported format, its scheme detected on itself
    when tag_scheme is auto; `data.label_map` applies) appended to the training split.

    Replayed rows keep their file's line numbers; their sentence ids follow train's and their documents are
    marked `replay:` so document context never joins a replayed sentence to a new one.
    """
    ratio = data_cfg.replay_ratio
    key = "data.replay_file"
    path = resolve_data_path(data_cfg.replay_file, base_dir, key)
    replay = _read_configured_file(path, data_cfg, key)
    wanted = round(ratio * len(train))
    if not 0 < ratio or wanted < 1:
        raise DataError(
            f"data.replay_ratio={ratio}: must give at least one sentence of {len(train)} train sentences (e.g. 0.5)"
        )
    if wanted > len(replay):
        raise DataError(
            f"data.replay_ratio={ratio} asks for {wanted} sentences ({ratio} x {len(train)} train), "
            f"but {key} has {len(replay)}; at most {len(replay) / len(train):.3f}",
            path,
        )
    replay = rename_entity_types(replay, getattr(data_cfg, "label_map", None), "replay")
    try:
        source = (
            detect_scheme(replay["ner_tags"])
            if data_cfg.tag_scheme == "auto"
            else schemes.normalize_scheme(data_cfg.tag_scheme)
        )
    except ValueError as err:
        raise DataError(f"{key}: {err}", path) from None
    available = len(replay)
    rows = sorted(random.Random(data_cfg.split_seed).sample(range(available), wanted))
    replay = _convert_split(replay.select(rows), "replay", source, target, str(path))
    offset = max(train["sentence_id"], default=-1) + 1
    replay = replay.map(
        lambda batch: {
            "sentence_id": [offset + i for i in batch["sentence_id"]],
            "document_id": [f"replay:{d}" if d else "" for d in batch["document_id"]],
        },
        batched=True,
        desc="replay rows",
    )
    logger.info(
        "rehearsal: %d of %d sentences of %s (replay_ratio %s, seed %d) added to %d train sentences",
        wanted,
        available,
        path,
        ratio,
        data_cfg.split_seed,
        len(train),
    )
    if (SPANS in train.column_names) != (SPANS in replay.column_names):  # nested levels from one file only
        replay = (
            replay.remove_columns(SPANS)
            if SPANS in replay.column_names
            else replay.add_column(SPANS, [spans_of_tags(tags) for tags in replay["ner_tags"]], feature=SPANS_FEATURE)
        )
    return datasets.concatenate_datasets([train, replay.cast(train.features)])


def _convert_split(ds: datasets.Dataset, name: str, source: str, target: str, path: str | None) -> datasets.Dataset:
    """Convert one split's tags from `source` to `target`, naming the sentence on a scheme error.

    `convert_tags` also repairs invalid sequences (e.g. IOB2 `O I-PER` becomes `O B-PER`); the
    number of repaired sentences is logged, since it hints at a wrong `tag_scheme` or bad data.
    """
    repaired = [0]

    def convert(batch: dict[str, list]) -> dict[str, list]:
        out = []
        for tags, line, sentence_id in zip(batch["ner_tags"], batch["line"], batch["sentence_id"]):
            try:
                out.append(schemes.convert_tags(tags, source, target))
            except schemes.InvalidTagError as err:
                where = f"split {name!r} sentence_id {sentence_id}: "
                raise DataError(f"{where}{err}", path, line or None) from None
            if source == target and out[-1] != tags:
                repaired[0] += 1
        return {"ner_tags": out}

    converted = ds.map(convert, batched=True, desc=f"{source} -> {target}")
    if repaired[0]:
        logger.warning("split %r: %d sentence(s) were not valid %s and were repaired", name, repaired[0], source)
    return converted


def load_split(data_cfg: Any, split: str, base_dir: str | Path = ".") -> tuple[datasets.Dataset, str]:
    """Load one split in the training scheme, for evaluating an already trained model.

    A file given for the split (`data.<split>_file`) is read on its own (its scheme detected on
    itself when `tag_scheme` is auto); otherwise the recipe's full data is loaded and the split
    taken from it, so a carved split is the same one training held out.
    """
    if split not in ("train", "validation", "test"):
        raise DataError(f"split must be train, validation or test, got {split!r}")
    file = getattr(data_cfg, f"{split}_file")
    if not file:
        splits, source = load_splits(data_cfg, base_dir)
        if split not in splits:
            raise DataError(f"no {split!r} split in the data (splits: {sorted(splits)})")
        return splits[split], source
    key = f"data.{split}_file"
    path = resolve_data_path(file, base_dir, key)
    ds = _read_configured_file(path, data_cfg, key)
    if len(ds) == 0:
        raise DataError(f"{key}: no sentences", path)
    ds = rename_entity_types(ds, getattr(data_cfg, "label_map", None), split)
    try:
        target = schemes.normalize_scheme(data_cfg.train_scheme)
        source = (
            detect_scheme(ds["ner_tags"])
            if data_cfg.tag_scheme == "auto"
            else schemes.normalize_scheme(data_cfg.tag_scheme)
        )
    except ValueError as err:
        raise DataError(f"data.tag_scheme/data.train_scheme: {err}") from None
    return _convert_split(ds, split, source, target, str(path)), source
