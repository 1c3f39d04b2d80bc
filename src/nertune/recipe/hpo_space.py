"""The HPO search space: one table of the recipe keys `nertune hpo` can search.

`check_hpo_section` validates a recipe's `hpo` section against it (called by config.load_recipe); hpo.py
samples a trial with it (`suggest`), applies the trial's values to a recipe and hands the Trainer the trial's
TrainingArguments. A new searchable key is one row here plus its field in `config.HpoSection` (named like the
key with `_` for `.`: `lora.r` -> `lora_r`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nertune.errors import RecipeError


@dataclass(frozen=True)
class Dimension:
    """How one recipe key is searched."""

    # "range": [low, high] sampled uniformly ("log" scale: log-uniformly; int: integers); "choice": a list.
    kind: str
    value_type: type  # int or float: the recipe field's type, and how optuna samples a range
    # The TrainingArguments field a trial sets through the Trainer; None: read by model_init from the recipe.
    training_argument: str | None
    log: bool = False
    valid: Callable[[float, float], bool] = lambda low, high: True  # for a range: are the bounds allowed
    requirement: str = ""  # what `valid` checks, worded for the error message
    needs_lora: bool = False  # searching it needs lora.enabled=true


# Keyed by the dotted recipe key a trial sets; trials suggest values in this order (the seeded sampler's draws).
HPO_SPACE: dict[str, Dimension] = {
    "learning_rate": Dimension(
        "range",
        float,
        "learning_rate",
        log=True,
        valid=lambda low, high: low > 0,
        requirement="is searched on a log scale: low must be > 0",
    ),
    "num_train_epochs": Dimension(
        "range", int, "num_train_epochs", valid=lambda low, high: low >= 1, requirement="must be at least 1"
    ),
    # transformers 5: warmup_steps < 1 is a fraction of the total steps, i.e. the recipe's warmup_ratio.
    "warmup_ratio": Dimension(
        "range", float, "warmup_steps", valid=lambda low, high: 0 <= low and high < 1, requirement="must lie in [0, 1)"
    ),
    "weight_decay": Dimension(
        "range", float, "weight_decay", valid=lambda low, high: low >= 0, requirement="must be >= 0"
    ),
    "per_device_train_batch_size": Dimension("choice", int, "per_device_train_batch_size"),
    "lora.r": Dimension("choice", int, None, needs_lora=True),
    "lora.alpha": Dimension("choice", int, None, needs_lora=True),
}


def hpo_field(recipe_key: str) -> str:
    """The `hpo` section field (and optuna parameter name) of a searchable recipe key: lora.r -> lora_r."""
    return recipe_key.replace(".", "_")


RECIPE_KEY_OF_FIELD: dict[str, str] = {hpo_field(key): key for key in HPO_SPACE}


def check_hpo_section(recipe) -> None:
    """Raise RecipeError naming the key when the recipe's `hpo` section (a config.Recipe's) is not a valid space."""
    hpo = recipe.hpo
    if hpo.n_trials < 1:
        raise RecipeError(f"recipe key 'hpo.n_trials' must be at least 1, got {hpo.n_trials}")
    if hpo.timeout_s is not None and hpo.timeout_s <= 0:
        raise RecipeError(f"recipe key 'hpo.timeout_s' must be positive, got {hpo.timeout_s}")
    for recipe_key, dimension in HPO_SPACE.items():
        name = hpo_field(recipe_key)
        values = getattr(hpo, name)
        if values is None:
            continue
        if dimension.kind == "range":
            if len(values) != 2 or not values[0] < values[1]:
                raise RecipeError(f"recipe key 'hpo.{name}' must be [low, high] with low < high, got {values}")
            if not dimension.valid(*values):
                raise RecipeError(f"recipe key 'hpo.{name}' {dimension.requirement}, got {values}")
        elif not values or any(c < 1 for c in values):  # batch sizes, LoRA ranks and alphas
            raise RecipeError(f"recipe key 'hpo.{name}' must be a non-empty list of positive integers, got {values}")
        if dimension.needs_lora and not recipe.lora.enabled:
            raise RecipeError(f"recipe key 'hpo.{name}' searches a LoRA setting: it needs lora.enabled=true")
    if hpo.per_device_train_batch_size is not None and recipe.global_batch_size is not None:
        raise RecipeError(
            "recipe key 'hpo.per_device_train_batch_size' cannot be searched with global_batch_size set "
            "(the global batch fixes the step); unset one of them"
        )
    if hpo.pruning and recipe.eval_strategy == "no":
        raise RecipeError(
            "recipe key 'hpo.pruning' prunes on intermediate validation F1: it needs eval_strategy=epoch or steps"
        )
