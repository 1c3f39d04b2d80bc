"""Helpers shared by the tests of the nertune.data package (tests/test_data_*.py)."""

from __future__ import annotations

from pathlib import Path

def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def data_cfg(**overrides):
    """The recipe's `data` section: config.DataConfig's defaults with `overrides`."""
    from nertune.config import DataConfig

    return DataConfig(**overrides)


def many_sentences(n: int, types=("PER", "LOC")) -> str:
    """A CoNLL text of n sentences; every sentence has one entity of each type."""
    blocks = []
    for i in range(n):
        lines = [f"w{i}\tO"] + [f"{t.lower()}{i}\tB-{t}" for t in types]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"

