"""The Python API for notebooks: `nertune.train`, `nertune.evaluate`, `nertune.predict`, the three commands
as functions that take recipe keys as Python values and return what the commands write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from nertune.recipe.schema import Recipe, apply_overrides, load_recipe

Overrides = Sequence[str] | Mapping[str, Any] | None
EVALUATE_OPTIONS = ("split", "name", "bootstrap", "bootstrap_seed")  # `run_evaluation`'s own keywords


def _merged(overrides: Overrides, settings: dict[str, Any]) -> Sequence[str] | Mapping[str, Any] | None:
    """`overrides` (key=value strings or a mapping of dotted keys) plus keyword settings, where `__` stands
    for the dot of a nested key (data__train_file=... is data.train_file)."""
    if not settings:
        return overrides
    extra = {key.replace("__", "."): value for key, value in settings.items()}
    if overrides is None:
        return extra
    if isinstance(overrides, Mapping):
        return {**overrides, **extra}
    return [*overrides, *(f"{key}={_as_text(value)}" for key, value in extra.items())]


def _as_text(value: Any) -> str:
    """A Python value as the command line spells it (lists and mappings in YAML flow style)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple, dict)):
        return yaml.safe_dump(list(value) if isinstance(value, tuple) else value, default_flow_style=True).strip()
    return str(value)


def train(recipe: str | Path | Recipe, overrides: Overrides = None, **settings: Any) -> dict:
    """Train like `nertune train`: a recipe file (or a loaded Recipe), then `overrides` and keyword settings
    (`learning_rate=1e-4`, `data__train_file="train.conll"`). Returns the run's metrics (metrics.json)."""
    from nertune.training.run import run_training

    changes = _merged(overrides, settings)
    resolved = apply_overrides(recipe, changes) if isinstance(recipe, Recipe) else load_recipe(recipe, changes)
    return run_training(resolved)


def evaluate(run_dir: str | Path, overrides: Overrides = None, **settings: Any) -> dict:
    """Score a run directory like `nertune evaluate` (`split="validation"`, `data__test_file=...`, any recipe key,
    `bootstrap=0`); returns the metrics it writes to <run_dir>/eval/<name>/metrics.json."""
    from nertune.evaluation.run import run_evaluation

    options = {key: settings.pop(key) for key in EVALUATE_OPTIONS if key in settings}
    changes = _merged(overrides, settings)
    if isinstance(changes, Mapping):
        changes = [f"{key}={_as_text(value)}" for key, value in changes.items()]
    return run_evaluation(run_dir, list(changes or []), **options)


def predict(run_dir: str | Path, input_path: str | Path, output_path: str | Path, **options: Any) -> int:
    """Tag a text, JSONL or CoNLL file like `nertune predict`; options as `run_prediction` takes them
    (input_format, output_format, batch_size, device, precision, documents, token_column, comment_prefix,
    encoding). Returns the number of records written. For texts in memory use `NerPredictor`."""
    from nertune.inference.files import run_prediction

    return run_prediction(run_dir, input_path, output_path, **options)
