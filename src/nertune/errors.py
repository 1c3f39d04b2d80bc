"""The errors nertune raises for bad input: all subclass `NertuneError`, so callers (the CLI, notebooks) can
tell a user mistake, reported in one line, from a bug, reported with its traceback.

Module-specific ones live next to their concern and subclass `NertuneError` too: `DataError` (data),
`InvalidTagError` (schemes.py), `LaunchError` (distributed.py), `HubError` (hub.py).
"""

from __future__ import annotations


class NertuneError(ValueError):
    """Bad input: a recipe, data file, model directory, option or request the user can fix.

    A ValueError so that code catching ValueError before these classes existed keeps working.
    """


class RecipeError(NertuneError):
    """A recipe key or value is wrong; the message names the key (and the file). Also importable from config."""


class PathNotFoundError(NertuneError, FileNotFoundError):
    """A file or directory the user named does not exist; also a FileNotFoundError, which it was before."""


class ModelNotFoundError(PathNotFoundError):
    """A model path, a model directory, its config.json, or an adapter's base model or label file is missing."""


class ModelError(NertuneError):
    """A model directory exists but cannot be used as asked (no label names, no fast tokenizer, an adapter
    where a full model is needed, labels that do not match the data)."""


class RequestError(NertuneError):
    """A prediction request or option is wrong: input/output files and formats, device, precision, batch size."""


class MissingDependencyError(NertuneError):
    """A command needs an optional extra that is not installed (serve: starlette/uvicorn, hpo: optuna)."""
