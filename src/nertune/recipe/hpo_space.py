"""The HPO search space, derived from the recipe schema: a recipe field marked `json_schema_extra={"hpo": {...}}`
is searchable, and its type and `Field` bounds are the space's.

`search_space(Recipe)` walks the schema; `hpo_section_model` builds the `hpo` section from it (one optional
`[low, high]` or choice list per searchable key, named like the key with `_` for `.`: `lora.r` -> `hpo.lora_r`);
`check_ranges` validates a section's ranges against the fields' bounds and `check_hpo_section` the rules that
need the whole recipe. training/hpo.py samples a trial with the space (`suggest`) and applies it.

A new searchable key: `json_schema_extra={"hpo": {"search": "range" | "choice", "log": bool,
"training_argument": <TrainingArguments field, or omitted when model_init reads it from the recipe>}}` on its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, Field, create_model

from nertune.errors import RecipeError


@dataclass(frozen=True)
class Dimension:
    """How one recipe key is searched."""

    key: str  # the dotted recipe key a trial sets
    search: Literal["range", "choice"]  # [low, high] sampled uniformly (log-uniformly with `log`), or a list
    value_type: type  # int or float: the recipe field's type, and how optuna samples a range
    # The TrainingArguments field a trial sets through the Trainer; None: read by model_init from the recipe.
    training_argument: str | None
    log: bool
    bounds: dict[str, float]  # the field's ge/gt/le/lt

    @property
    def needs_lora(self) -> bool:
        return self.key.startswith("lora.")

    def admits(self, value: float) -> bool:
        checks = {"ge": value.__ge__, "gt": value.__gt__, "le": value.__le__, "lt": value.__lt__}
        return all(checks[name](bound) for name, bound in self.bounds.items())

    def interval(self) -> str:
        b = self.bounds
        low = f"[{b['ge']:g}" if "ge" in b else f"({b['gt']:g}" if "gt" in b else "(-inf"
        high = f"{b['le']:g}]" if "le" in b else f"{b['lt']:g})" if "lt" in b else "inf)"
        return f"{low}, {high}"


def hpo_field(recipe_key: str) -> str:
    """The `hpo` section field (and optuna parameter name) of a searchable recipe key: lora.r -> lora_r."""
    return recipe_key.replace(".", "_")


def field_bounds(field: Any) -> dict[str, float]:
    """A pydantic field's numeric bounds (`Field(ge=0, lt=1)` -> {"ge": 0, "lt": 1})."""
    out: dict[str, float] = {}
    for item in field.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                out[name] = getattr(item, name)
    return out


def search_space(model: type[BaseModel], prefix: str = "") -> dict[str, Dimension]:
    """Every searchable field of `model` and its sections, keyed by dotted recipe key: the model's own fields
    first, then its sections' (the order in which a trial draws them from the seeded sampler)."""
    space: dict[str, Dimension] = {}
    sections = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            sections.append((name, field.annotation))
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        spec = extra.get("hpo")
        if spec is None:
            continue
        space[prefix + name] = Dimension(
            key=prefix + name,
            search=spec["search"],
            value_type=int if spec.get("integers") else field.annotation,  # num_train_epochs: a float, searched whole
            training_argument=spec.get("training_argument"),
            log=spec.get("log", False),
            bounds=field_bounds(field),
        )
    for name, section in sections:
        space.update(search_space(section, f"{prefix}{name}."))
    return space


def hpo_section_model(base: type[BaseModel], space: dict[str, Dimension]) -> type[BaseModel]:
    """The `hpo` section: `base`'s settings plus one optional range or choice list per searchable key."""
    ranges: dict[str, Any] = {}
    for key, dimension in space.items():
        kind = f"[low, high]{', log scale' if dimension.log else ''}" if dimension.search == "range" else "choices"
        item = "integers" if dimension.value_type is int else "numbers"
        ranges[hpo_field(key)] = (
            list[dimension.value_type] | None,
            Field(None, description=f"search `{key}`: {kind} ({item} in {dimension.interval()}); unset: not searched"),
        )
    section = create_model("HpoSection", __base__=base, __module__=base.__module__, **ranges)
    section.__doc__ = "`nertune hpo`: an optuna search over the keys set here, objective validation entity F1."
    section.space = space
    return section


def check_ranges(hpo: Any) -> None:
    """Raise ValueError naming the key when a range or choice list of the `hpo` section is not within its
    recipe field's bounds."""
    for key, dimension in type(hpo).space.items():
        name = hpo_field(key)
        values = getattr(hpo, name)
        if values is None:
            continue
        if dimension.search == "range" and (len(values) != 2 or not values[0] < values[1]):
            raise ValueError(f"recipe key 'hpo.{name}' must be [low, high] with low < high, got {values}")
        if dimension.search == "choice" and not values:
            raise ValueError(f"recipe key 'hpo.{name}' must be a non-empty list of choices, got {values}")
        if not all(dimension.admits(v) for v in values):
            raise ValueError(
                f"recipe key 'hpo.{name}': every value must lie in {dimension.interval()} (the bounds of "
                f"{key}), got {values}"
            )
        if dimension.log and values[0] <= 0:
            raise ValueError(f"recipe key 'hpo.{name}' is searched on a log scale: low must be > 0, got {values}")


def check_hpo_section(recipe: Any) -> None:
    """Raise RecipeError for an `hpo` section that does not fit the rest of the recipe."""
    hpo = recipe.hpo
    for key, dimension in type(hpo).space.items():
        if dimension.needs_lora and getattr(hpo, hpo_field(key)) is not None and not recipe.lora.enabled:
            raise RecipeError(f"recipe key 'hpo.{hpo_field(key)}' searches a LoRA setting: it needs lora.enabled=true")
    if hpo.per_device_train_batch_size is not None and recipe.global_batch_size is not None:
        raise RecipeError(
            "recipe key 'hpo.per_device_train_batch_size' cannot be searched with global_batch_size set "
            "(the global batch fixes the step); unset one of them"
        )
    if hpo.pruning and recipe.eval_strategy == "no":
        raise RecipeError(
            "recipe key 'hpo.pruning' prunes on intermediate validation F1: it needs eval_strategy=epoch or steps"
        )
