"""The recipe key reference: every dotted key with its type or choices, default and description, read from the
schema (`nertune recipes --keys`, and the docs)."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from nertune.recipe.definition import Recipe
from nertune.recipe.hpo_space import field_bounds


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{choice}`" for choice in typing.get_args(annotation))
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    return text or str(annotation).replace("typing.", "").replace("NoneType", "None").replace("|", "\\|")


def _bounds(field: Any) -> str:
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    parts = [f"{words[name]} {bound:g}" for name, bound in field_bounds(field).items()]
    parts += [f"at least {item.min_length} item" for item in field.metadata if hasattr(item, "min_length")]
    return f" ({', '.join(parts)})" if parts else ""


def _rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            rows.extend(_rows(field.annotation, f"{prefix}{name}."))
            continue
        default = field.default if field.default is not PydanticUndefined else field.default_factory()
        searchable = "; searchable by `nertune hpo`" if (field.json_schema_extra or {}).get("hpo") else ""
        description = (field.description or "").replace("|", "\\|") + searchable
        rows.append(
            f"| `{prefix}{name}` | {_type_name(field.annotation)}{_bounds(field)} | `{default!r}` | {description} |"
        )
    return rows


def recipe_key_reference() -> str:
    """A Markdown table of every recipe key: dotted key, type (or choices) and bounds, default, description."""
    header = "| key | type | default | description |\n|---|---|---|---|\n"
    return header + "\n".join(_rows(Recipe)) + "\n"
