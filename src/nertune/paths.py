"""Where things are: model names and paths (`pkg://`, local dirs, Hub ids), adapter dirs, a run's recipe file.

A small module of its own so that `lora.py` (which reads adapter dirs) and `modeling.py` (which loads
models, adapters included) both depend on it and not on each other.
"""

from __future__ import annotations

import os
from pathlib import Path

from .assets import is_package_path, resolve_path
from .errors import ModelNotFoundError

RECIPE_FILE = "recipe.yaml"  # the resolved recipe of a run, beside HF's config.json
LEGACY_RECIPE_FILE = "config.yaml"  # its name in run dirs written by older nertune versions


def resolve_model_path(name_or_path: str, base_dir: str | Path = ".") -> str:
    """A `pkg://` path or an existing local dir becomes an absolute path; anything else is a Hub name.

    A string that looks like a local path (starts with `.`, `/` or `~`, or contains the OS separator and
    exists partly) but does not exist is an error here, rather than a confusing Hub lookup later.
    """
    if is_package_path(name_or_path):
        return str(resolve_path(name_or_path))
    local = Path(name_or_path).expanduser()
    if not local.is_absolute():
        local = Path(base_dir) / local
    if local.exists():
        if not (local / "config.json").is_file() and not is_adapter_dir(local):
            raise ModelNotFoundError(f"model path {name_or_path!r} exists but has no config.json ({local})")
        return str(local)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or os.sep + os.sep in name_or_path:
        raise ModelNotFoundError(f"model path {name_or_path!r} does not exist ({local})")
    return name_or_path  # a Hub id such as `bert-base-cased` or `org/model`


def is_adapter_dir(path: str | Path) -> bool:
    """A LoRA adapter directory (peft's `adapter_config.json`, no `config.json`) rather than a full model."""
    return (Path(path) / "adapter_config.json").is_file()


def recipe_path(run_dir: str | Path) -> Path | None:
    """The run's saved recipe: `recipe.yaml`, else an older run's `config.yaml`; None when there is neither."""
    for name in (RECIPE_FILE, LEGACY_RECIPE_FILE):
        path = Path(run_dir) / name
        if path.is_file():
            return path
    return None
