"""The command line: bad input ends in one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


def test_recipe_typo_is_one_line_with_a_suggestion():
    result = run_cli("recipes/quickstart.yaml", "learnig_rate=1e-4")
    assert result.returncode == 2
    assert "did you mean 'learning_rate'" in result.stderr and "Traceback" not in result.stderr


def test_malformed_training_file_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("EU\tB-ORG\nrejects\tO\nGerman\n\ncall\tO\n", encoding="utf-8")
    result = run_cli("recipes/quickstart.yaml", f"data.train_file={bad}", f"output_dir={tmp_path / 'out'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{bad}:3" in result.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_missing_model_path_is_one_line(tmp_path):
    result = run_cli("recipes/quickstart.yaml", f"model_name_or_path={tmp_path / 'nope'}",
                     f"output_dir={tmp_path / 'out'}")
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
