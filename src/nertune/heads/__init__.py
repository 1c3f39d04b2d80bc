"""Token-classification heads: the registry (recipe `head` name -> head class).

Adding a head: one module here with a `Head` subclass (see `base.py`) and one line in `HEADS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nertune.errors import RecipeError
from nertune.heads.base import Head, unwrap_model
from nertune.heads.crf import CrfHead
from nertune.heads.linear import LinearHead

if TYPE_CHECKING:
    from nertune.recipe.schema import Recipe

HEADS: dict[str, type[Head]] = {LinearHead.name: LinearHead, CrfHead.name: CrfHead}


def get_head(name: str) -> type[Head]:
    """The head class registered as `name`."""
    try:
        return HEADS[name]
    except KeyError:
        raise RecipeError(f"unknown head {name!r}; known heads: {sorted(HEADS)}") from None


def head_of(model_or_config: Any) -> Head:
    """The head a model (or its config) was trained with: config.json's `nertune_head`, linear when unmarked."""
    config = getattr(model_or_config, "config", model_or_config)
    name = getattr(config, "nertune_head", None) or LinearHead.name
    return get_head(name).from_config(config)


def head_for_recipe(recipe: Recipe, scheme: str) -> Head:
    """The head the recipe's `head` key names, set up from its keys (e.g. its learning rate)."""
    return get_head(recipe.head).from_recipe(recipe, scheme)


__all__ = ["HEADS", "Head", "get_head", "head_for_recipe", "head_of", "unwrap_model"]
