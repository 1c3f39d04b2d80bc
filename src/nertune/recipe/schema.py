"""Recipes: a small YAML file that pins every hyperparameter, plus `key=value` overrides.

Like torchtune/litgpt recipes: the YAML and the command line set the same keys (dotted for nesting,
`data.train_file=...`); pydantic checks every value against the schema (`definition.py`, `sections.py`), an
unknown key is an error that suggests the closest valid one, every error names the file (or the command line)
and the key, and the resolved recipe is saved next to the outputs.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from nertune.errors import RecipeError
from nertune.recipe.definition import HPO_SPACE, HpoSection, Recipe
from nertune.recipe.sections import DataConfig, LoraSection, load_yaml_value

__all__ = [
    "RecipeError",
    "Recipe",
    "DataConfig",
    "LoraSection",
    "HpoSection",
    "HPO_SPACE",
    "load_recipe",
    "apply_overrides",
    "all_keys",
    "parse_overrides",
    "override_values",
    "recipe_to_dict",
    "save_recipe",
]

Overrides = Sequence[str] | Mapping[str, Any] | None


def _sections(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    return {
        name: field.annotation
        for name, field in model.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }


def all_keys(model: type[BaseModel] = Recipe, prefix: str = "") -> list[str]:
    """Every settable dotted key of the recipe."""
    keys = []
    sections = _sections(model)
    for name in model.model_fields:
        if name in sections:
            keys.extend(all_keys(sections[name], f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def field_of(dotted: str) -> Any:
    """The pydantic FieldInfo of a dotted key (None when there is no such key)."""
    model: type[BaseModel] = Recipe
    *sections, name = dotted.split(".")
    for section in sections:
        model = _sections(model).get(section)
        if model is None:
            return None
    return model.model_fields.get(name)


def _unknown_key_error(key: str, source: str) -> RecipeError:
    valid = all_keys()
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(valid))}"
    return RecipeError(f"{source}: unknown recipe key {key!r}{hint}")


class _Tree:
    """The recipe's values as nested mappings, and where each dotted key was set (a file or the command line)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.sources: dict[str, str] = {}

    def set(self, dotted: str, value: Any, source: str) -> None:
        sections = {f"{name}": model for name, model in _sections(Recipe).items()}
        if dotted in sections:
            if not isinstance(value, Mapping):
                raise RecipeError(f"{source}: recipe key {dotted!r} is a section; expected a mapping, got {value!r}")
            for key, sub_value in value.items():
                self.set(f"{dotted}.{key}", sub_value, source)
            return
        if field_of(dotted) is None:
            raise _unknown_key_error(dotted, source)
        *parents, name = dotted.split(".")
        target = self.values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[name] = value
        self.sources[dotted] = source

    def set_overrides(self, overrides: Overrides) -> None:
        if isinstance(overrides, Mapping):  # Python values from the API: {"data.train_file": path, "max_steps": 10}
            for key, value in overrides.items():
                self.set(str(key), value, "overrides")
            return
        for key, value in override_values(list(overrides or [])).items():
            self.set(key, value, "command line")

    def validate(self, default_source: str) -> Recipe:
        try:
            return Recipe.model_validate(self.values)
        except ValidationError as e:
            raise _recipe_error(e, self.sources, default_source) from None


def _describe(error: dict[str, Any], dotted: str) -> str:
    """pydantic's error as the recipe's message: ` must be at least 8, got 4`, `: expected an integer, got 'x'`."""
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, name = bounds[kind]
        return f" must be {words} {ctx[name]}, got {value!r}"
    if kind == "literal_error":
        return f" must be one of {list(typing.get_args(field_of(dotted).annotation))}, got {value!r}"
    if kind == "too_short":
        return f" must have at least {ctx['min_length']} item(s), got {value!r}; leave it unset for the default"
    if kind == "extra_forbidden":
        return ""
    expected = {
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "string": "a string",
        "list": "a list",
        "dict": "a mapping",
        "model": "a mapping",
    }
    for prefix, words in expected.items():
        if kind.startswith(prefix + "_"):
            return f": expected {words}, got {value!r}"
    if kind == "value_error":
        return f": {ctx['error']}"
    return f": {error['msg']}, got {value!r}"


def _recipe_error(error: ValidationError, sources: dict[str, str], default_source: str) -> RecipeError:
    """The first error of a ValidationError as `source: recipe key 'dotted.key' message`."""
    first = error.errors()[0]
    loc = [part for part in first["loc"] if isinstance(part, str)]
    dotted = ".".join(loc)
    source = sources.get(dotted, default_source)
    if first["type"] == "extra_forbidden":  # from a Recipe built directly, e.g. Recipe.model_validate(mapping)
        return _unknown_key_error(dotted, source)
    if first["type"] == "value_error" and str(first["ctx"]["error"]).startswith("recipe key"):
        return RecipeError(f"{source}: {first['ctx']['error']}")  # a validator that names its keys itself
    if loc and _sections(Recipe).get(loc[0]) and len(loc) == 1 and first["type"].startswith("model"):
        return RecipeError(f"{source}: recipe key {dotted!r} is a section; expected a mapping, got {first['input']!r}")
    return RecipeError(f"{source}: recipe key {dotted!r}{_describe(first, dotted)}")


def parse_overrides(overrides: list[str]) -> list[tuple[str, str]]:
    """`key=value` strings as (key, value text) pairs."""
    pairs = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"command-line override {item!r} is not of the form key=value")
        pairs.append((key.strip(), value))
    return pairs


def override_values(overrides: Sequence[str]) -> dict[str, Any]:
    """`key=value` strings as a mapping of dotted keys to values, each read for its field's type."""
    values = {}
    for key, text in parse_overrides(list(overrides)):
        field = field_of(key)
        values[key] = load_yaml_value(text, field.annotation if field is not None else None)
    return values


def _checked(recipe: Recipe) -> Recipe:
    if not recipe.model_name_or_path:
        raise RecipeError("recipe key 'model_name_or_path' is required (a local model dir, pkg://... or a Hub name)")
    return recipe


def load_recipe(path: str | Path | None, overrides: Overrides = None) -> Recipe:
    """Read a recipe YAML (or start from defaults when `path` is None) and apply overrides: `key=value`
    strings (the command line) or a mapping of dotted keys to values."""
    tree = _Tree({})
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {path}")
        with open(path, encoding="utf-8") as f:
            try:
                content = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise RecipeError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(content, dict):
            raise RecipeError(f"{path}: a recipe is a mapping of keys to values, got {type(content).__name__}")
        for key, value in content.items():
            tree.set(str(key), value, str(path))
    tree.set_overrides(overrides)
    if tree.values.get("output_dir") is None:
        tree.values["output_dir"] = str(Path("runs") / (path.stem if path is not None else "run"))
    source = _source_of(overrides) if path is None else f"{path}{' with its overrides' if overrides else ''}"
    return _checked(tree.validate(source))


def apply_overrides(recipe: Recipe, overrides: Overrides) -> Recipe:
    """A checked copy of `recipe` with overrides applied, as `load_recipe` applies them to a file."""
    tree = _Tree(recipe_to_dict(recipe))
    tree.set_overrides(overrides)
    return _checked(tree.validate(_source_of(overrides)))


def _source_of(overrides: Overrides) -> str:
    return "overrides" if isinstance(overrides, Mapping) else "command line"


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """Every key of the recipe as plain values (nested mappings for the sections)."""
    return recipe.model_dump()


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe; `nertune train <that file>` reproduces the run."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(recipe_to_dict(recipe), f, sort_keys=False, allow_unicode=True)
