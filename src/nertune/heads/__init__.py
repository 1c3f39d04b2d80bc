"""Token-classification heads: the registry (recipe `head` name -> head class).

Adding a head: one module here with a `Head` subclass (see `base.py`) and one line in `HEADS`. The head a trained
model has is `nertune.model.settings.head_of` (config.json's `nertune` section names it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nertune.errors import RecipeError
from nertune.heads.base import Decoded, Entity, Head, unwrap_model
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


def head_for_recipe(recipe: Recipe, scheme: str) -> Head:
    """The head the recipe's `head` key names, set up from its keys (e.g. its learning rate)."""
    return get_head(recipe.head).from_recipe(recipe, scheme)


__all__ = ["HEADS", "Decoded", "Entity", "Head", "get_head", "head_for_recipe", "unwrap_model"]
