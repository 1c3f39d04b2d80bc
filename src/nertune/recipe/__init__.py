"""The recipe: what a run is, as data. The schema (`schema.py`), loading YAML with `key=value` overrides, saving
the resolved recipe, and the hyperparameter-search space over the same keys (`hpo_space.py`).

May import: `nertune.errors`, `nertune.data` (to check a data file's encoding while loading). Nothing that
loads a model.
"""

from nertune.recipe.schema import Recipe, RecipeError, apply_overrides, load_recipe, save_recipe

__all__ = ["Recipe", "RecipeError", "apply_overrides", "load_recipe", "save_recipe"]
