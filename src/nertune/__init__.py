"""nertune: fine-tune BERT-family encoders for named-entity recognition.

The Python API (`from nertune import train, evaluate, predict, NerPredictor, load_recipe, NertuneError`) is
imported on first use, so `import nertune` stays cheap (no torch, no transformers).

`LAYERS` is the one declaration of the package's layers, lowest first: a module may import modules of its own
layer or of a lower one, never of a higher one (tests/test_architecture.py enforces it).
"""

from __future__ import annotations

import importlib
from typing import Any

from nertune.errors import NertuneError

__version__ = "0.1.0"
__all__ = ["train", "evaluate", "predict", "NerPredictor", "load_recipe", "NertuneError", "__version__"]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("nertune.errors", "nertune.assets", "nertune.schemes", "nertune.distributed"),
    ("nertune.data",),
    ("nertune.recipe",),
    ("nertune.heads",),
    ("nertune.model",),
    ("nertune.inference",),
    ("nertune.evaluation",),
    ("nertune.hub",),
    ("nertune.training",),
    ("nertune.serving",),
    ("nertune.api", "nertune.cli"),
)

_LAZY = {
    "train": "nertune.api",
    "evaluate": "nertune.api",
    "predict": "nertune.api",
    "NerPredictor": "nertune.inference.predictor",
    "load_recipe": "nertune.recipe",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
