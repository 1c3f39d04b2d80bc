"""The Python API for notebooks: `nertune.train`, `nertune.evaluate`, `nertune.predict`, the three commands
as functions that take recipe keys as Python values and return what the commands write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nertune.recipe.schema import Recipe, apply_overrides, load_recipe, override_values

Overrides = Sequence[str] | Mapping[str, Any] | None


def _merged(overrides: Overrides, settings: dict[str, Any]) -> Overrides:
    """`overrides` (key=value strings or a mapping of dotted keys) plus keyword settings, where `__` stands
    for the dot of a nested key (data__train_file=... is data.train_file)."""
    if not settings:
        return overrides
    extra = {key.replace("__", "."): value for key, value in settings.items()}
    if overrides is None:
        return extra
    if isinstance(overrides, Mapping):
        return {**overrides, **extra}
    return {**override_values(overrides), **extra}


def train(recipe: str | Path | Recipe, overrides: Overrides = None, **settings: Any) -> dict:
    """Train like `nertune train`: a recipe file (or a loaded Recipe), then `overrides` and keyword settings
    (`learning_rate=1e-4`, `data__train_file="train.conll"`). Returns the run's metrics (metrics.json)."""
    from nertune.training.run import run_training

    changes = _merged(overrides, settings)
    resolved = apply_overrides(recipe, changes) if isinstance(recipe, Recipe) else load_recipe(recipe, changes)
    return run_training(resolved)


def evaluate(
    run_dir: str | Path,
    overrides: Overrides = None,
    *,
    split: str = "test",
    name: str | None = None,
    bootstrap: int = 1000,
    bootstrap_seed: int = 0,
    **settings: Any,
) -> dict:
    """Score a run directory like `nertune evaluate`: on `split` (train, validation or test), written to
    <run_dir>/eval/<name>/ (default: from the data), with a `bootstrap`-resample F1 confidence interval (0: none);
    `overrides` and keyword settings set recipe keys (`data__test_file=...`). Returns the metrics it writes."""
    from nertune.evaluation.run import run_evaluation

    return run_evaluation(
        run_dir,
        _merged(overrides, settings),
        split=split,
        name=name,
        bootstrap=bootstrap,
        bootstrap_seed=bootstrap_seed,
    )


def predict(run_dir: str | Path, input_path: str | Path, output_path: str | Path, **options: Any) -> int:
    """Tag a text, JSONL or CoNLL file like `nertune predict`; options as `run_prediction` takes them
    (input_format, output_format, batch_size, device, precision, documents, token_column, comment_prefix,
    encoding). Returns the number of records written. For texts in memory use `NerPredictor`."""
    from nertune.inference.files import run_prediction

    return run_prediction(run_dir, input_path, output_path, **options)
