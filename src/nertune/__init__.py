"""nertune: fine-tune BERT-family encoders for named-entity recognition.

The Python API (`from nertune import train, evaluate, predict, NerPredictor, load_recipe, NertuneError`) is
imported on first use, so `import nertune` stays cheap (no torch, no transformers).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from .errors import NertuneError

__version__ = "0.1.0"
__all__ = ["train", "evaluate", "predict", "NerPredictor", "load_recipe", "NertuneError", "__version__"]

_LAZY = {"evaluate": "api", "predict": "api", "NerPredictor": "predictor", "load_recipe": "config"}


class _TrainModule(types.ModuleType):
    """`nertune.train` is the training module (`nertune.train.run_training`) and, called, the API function
    `nertune.api.train`: the import system sets the submodule as the package attribute `train` whenever it is
    imported, so a plain function of that name would be replaced by the module."""

    def __call__(self, recipe: Any, overrides: Any = None, **settings: Any) -> dict:
        from .api import train

        return train(recipe, overrides, **settings)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "train" and isinstance(value, types.ModuleType):
            value.__class__ = _TrainModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name == "train":
        return importlib.import_module(".train", __name__)  # importing it sets the callable attribute
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
