"""The command line: bad input (a NertuneError) ends in one clear line and exit code 2, never a traceback;
a bug ends in its traceback and exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nertune.cli import main
from nertune.data import DataError
from nertune.distributed import LaunchError
from nertune.errors import (
    MissingDependencyError,
    ModelError,
    ModelNotFoundError,
    NertuneError,
    PathNotFoundError,
    RequestError,
)
from nertune.hub.push import HubError
from nertune.recipe.schema import RecipeError
from nertune.schemes import InvalidTagError

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


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
    result = run_cli(
        "recipes/quickstart.yaml", f"model_name_or_path={tmp_path / 'nope'}", f"output_dir={tmp_path / 'out'}"
    )
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def run_module(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """`python -m nertune.cli ARGS`, or `python -c CODE` with ARGS as argv, in a real subprocess."""
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "nertune.cli", *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"},
    )


def test_bad_arguments_exit_2_from_argparse():
    result = run_module("predict", "runs/whatever")
    assert result.returncode == 2 and "--input" in result.stderr and "Traceback" not in result.stderr


def test_a_bug_exits_1_with_its_traceback(tmp_path):
    """Anything that is not a NertuneError is a bug: the traceback is printed, exit code 1."""
    bug = (
        "import sys\nimport nertune.recipe.schema\n"
        "def load_recipe(*args, **kwargs):\n    raise RuntimeError('a bug in load_recipe')\n"
        "nertune.recipe.schema.load_recipe = load_recipe\n"
        "from nertune.cli import main\nsys.exit(main(['train', *sys.argv[1:]]))\n"
    )
    result = run_module("recipes/quickstart.yaml", code=bug)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: a bug in load_recipe" in result.stderr


def test_a_nertune_error_from_any_module_is_one_line(monkeypatch, capsys):
    import nertune.recipe.schema

    def load_recipe(*args, **kwargs):
        raise ModelNotFoundError("model path 'x' does not exist")

    monkeypatch.setattr(nertune.recipe.schema, "load_recipe", load_recipe)
    assert main(["train", "recipes/quickstart.yaml"]) == 2
    err = capsys.readouterr().err
    assert "error: model path 'x' does not exist" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "error",
    [
        RecipeError,
        DataError,
        InvalidTagError,
        HubError,
        LaunchError,
        ModelError,
        ModelNotFoundError,
        PathNotFoundError,
        RequestError,
        MissingDependencyError,
    ],
)
def test_every_bad_input_error_is_a_nertune_error(error):
    assert issubclass(error, NertuneError) and issubclass(error, ValueError)


def test_missing_paths_stay_file_not_found_errors(tmp_path):
    from nertune.model.loading import resolve_model_path

    with pytest.raises(ModelNotFoundError) as raised:
        resolve_model_path(str(tmp_path / "nope"))
    assert isinstance(raised.value, FileNotFoundError)
