"""The shipped recipes (recipes/*.yaml of the checkout): names, one-line descriptions, copies to edit."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import nertune
from nertune.errors import RecipeError


def recipes_dir() -> Path:
    """The checkout's recipes/ (beside src/), else ./recipes."""
    shipped = Path(nertune.__file__).resolve().parents[2] / "recipes"
    return shipped if shipped.is_dir() else Path("recipes")


def describe(path: Path) -> str:
    """A recipe's first comment line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def shipped_recipes() -> dict[str, Path]:
    """Recipe name (file stem) -> file, sorted by name."""
    return {path.stem: path for path in sorted(recipes_dir().glob("*.yaml"))}


def copy_recipe(name: str, dest: str | Path) -> Path:
    """Copy the shipped recipe `name` (with or without .yaml) to `dest` (a file, or a directory to put it in);
    never overwrites. Returns the file written."""
    shipped = shipped_recipes()
    stem = name.removesuffix(".yaml")
    if stem not in shipped:
        close = difflib.get_close_matches(stem, list(shipped), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; shipped: {', '.join(shipped)}"
        raise RecipeError(f"no shipped recipe {name!r} in {recipes_dir()}{hint}")
    dest = Path(dest)
    target = dest / shipped[stem].name if dest.is_dir() else dest
    if target.exists():
        raise RecipeError(f"{target} exists already; not overwriting it")
    shutil.copyfile(shipped[stem], target)
    return target
