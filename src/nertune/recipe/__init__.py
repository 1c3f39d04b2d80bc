"""The recipe: what a run is, as data. The schema (pydantic models: `definition.py`, `sections.py`), loading YAML
with `key=value` overrides and saving the resolved recipe (`schema.py`), the hyperparameter-search space derived
from the schema (`hpo_space.py`), and the key reference (`reference.py`).

May import: `nertune.errors`, `nertune.data` (to check a data file's encoding while loading). Nothing that
loads a model.
"""

from nertune.recipe.reference import recipe_key_reference
from nertune.recipe.schema import Recipe, RecipeError, apply_overrides, load_recipe, save_recipe

__all__ = ["Recipe", "RecipeError", "apply_overrides", "load_recipe", "recipe_key_reference", "save_recipe"]
