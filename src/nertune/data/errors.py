"""`DataError`: bad input data, with the file and line it was found at."""

from __future__ import annotations

from pathlib import Path

from nertune.errors import NertuneError


class DataError(NertuneError):
    """Bad input data. The message starts with `file:line:` (or `file:`) when they are known."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        if path is not None:
            message = f"{path}:{line}: {message}" if line else f"{path}: {message}"
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.line = line
