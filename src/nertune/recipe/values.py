"""Recipe values from YAML or the command line, coerced to the field's type (`config.py` dataclasses).

PyYAML and `key=value` overrides both give strings where numbers, booleans, lists or mappings are meant
(`2e-4` without a dot is a string to PyYAML); every conversion error names the recipe key.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import yaml

from nertune.errors import RecipeError


def coerce_value(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the field's type, or raise RecipeError naming the key."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            return None
        return coerce_value(value, args[0], key)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if isinstance(value, str):
            parsed = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
            value = parsed
        if not isinstance(value, list):
            raise RecipeError(f"recipe key {key!r}: expected a list, got {value!r}")
        return [coerce_value(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        return coerce_mapping(value, key)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise RecipeError(f"recipe key {key!r}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise RecipeError(f"recipe key {key!r}: expected an integer, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RecipeError(f"recipe key {key!r}: expected an integer, got {value!r}") from None
        if not number.is_integer():
            raise RecipeError(f"recipe key {key!r}: expected an integer, got {value!r}")
        return int(number)
    if annotation is float:
        # PyYAML reads `2e-4` (no dot) as a string; accept it as the number everybody means.
        if isinstance(value, bool):
            raise RecipeError(f"recipe key {key!r}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise RecipeError(f"recipe key {key!r}: expected a number, got {value!r}") from None
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise RecipeError(f"recipe key {key!r}: expected a string, got {value!r}")
        return str(value)
    raise RecipeError(f"recipe key {key!r}: unsupported type {annotation}")


def coerce_mapping(value: Any, key: str) -> dict[str, str]:
    """A str -> str mapping from YAML (a mapping) or the command line (`A:B,C:D`, or a YAML flow `{A: B}`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise RecipeError(f"recipe key {key!r}: not a valid mapping {value!r}: {e}") from None
        else:
            pairs = {}
            for item in text.split(",") if text else []:
                source, sep, target = (part.strip() for part in item.partition(":"))
                if not sep or not source or not target:
                    raise RecipeError(
                        f"recipe key {key!r}: expected FROM:TO pairs separated by commas "
                        f"(e.g. PERSON:PER,LOCATION:LOC), got {item.strip()!r} in {value!r}"
                    )
                if source in pairs:
                    raise RecipeError(f"recipe key {key!r}: {source!r} is mapped twice in {value!r}")
                pairs[source] = target
            value = pairs
    if not isinstance(value, dict):
        raise RecipeError(f"recipe key {key!r}: expected a mapping (FROM:TO,...), got {value!r}")
    out = {}
    for source, target in value.items():
        if isinstance(source, (dict, list)) or isinstance(target, (dict, list)) or source is None or target is None:
            raise RecipeError(f"recipe key {key!r}: keys and values must be strings, got {source!r}: {target!r}")
        source, target = str(source).strip(), str(target).strip()
        if not source or not target:
            raise RecipeError(f"recipe key {key!r}: empty key or value in {value!r}")
        out[source] = target
    return out
