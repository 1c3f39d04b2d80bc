"""The command line: bad input (a NertuneError) ends in one clear line and exit code 2, never a traceback;
a bug ends in its traceback and exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
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


# --------------------------------------------------------------------------- a CLI that orients


def test_help_lists_every_command_with_a_line_and_version_prints_it():
    from nertune.cli import COMMANDS

    result = run_module("--help")
    assert result.returncode == 0
    listing = " ".join(result.stdout.split())  # help wraps long lines
    for name, (summary, _, _) in COMMANDS.items():
        assert f" {name} {summary}" in listing, name
    version = run_module("--version")
    assert version.returncode == 0 and version.stdout.strip() == "nertune 0.1.0"


def test_an_unknown_command_suggests_the_closest(capsys):
    assert main(["trian", "recipes/quickstart.yaml"]) == 2
    assert "error: unknown command 'trian'; did you mean 'train'?" in capsys.readouterr().err


def test_every_option_of_every_command_has_help():
    import argparse

    from nertune.cli import _parsers

    _, subparsers = _parsers()
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in subparsers.items()
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help
    ]
    assert missing == []


def test_recipes_lists_copies_and_prints_the_key_reference(tmp_path, capsys):
    assert main(["recipes"]) == 0
    listing = capsys.readouterr().out
    shipped = sorted((ROOT / "recipes").glob("*.yaml"))
    assert len(listing.splitlines()) == len(shipped)
    quickstart = (ROOT / "recipes" / "quickstart.yaml").read_text().splitlines()[0].lstrip("# ")
    assert any(line.split(maxsplit=1) == ["quickstart", quickstart] for line in listing.splitlines())

    assert main(["recipes", "cp", "quickstart", str(tmp_path)]) == 0
    assert (tmp_path / "quickstart.yaml").read_bytes() == (ROOT / "recipes" / "quickstart.yaml").read_bytes()
    assert main(["recipes", "cp", "quickstart.yaml", str(tmp_path / "mine.yaml")]) == 0
    assert main(["recipes", "cp", "quickstart", str(tmp_path / "mine.yaml")]) == 2  # never overwrites
    assert main(["recipes", "cp", "quikstart", str(tmp_path / "x.yaml")]) == 2
    assert "did you mean 'quickstart'?" in capsys.readouterr().err

    assert main(["recipes", "--keys"]) == 0
    keys = capsys.readouterr().out
    assert "| `data.train_file` |" in keys and "| `hpo.lora_r` |" in keys


def test_train_print_recipe_prints_the_resolved_recipe_and_trains_nothing(tmp_path, capsys):
    import yaml

    out = tmp_path / "never"
    argv = ["train", "recipes/quickstart.yaml", "--print-recipe", "seed=7", f"output_dir={out}"]
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["seed"] == 7 and printed["output_dir"] == str(out) and printed["data"]["split_seed"] == 42
    assert not out.exists()


def test_old_option_names_still_work_with_a_warning():
    """serve's and export's renamed options: the old names parse to the same value and warn."""
    from nertune.cli import _parsers

    _, subparsers = _parsers()
    serve = subparsers["serve"]
    new = serve.parse_args(
        ["m", "--max-texts-per-request", "4", "--max-sentences-per-call", "8", "--rows-per-pass", "2"]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = serve.parse_args(["m", "--max-batch", "4", "--max-batch-sentences", "8", "--batch-size", "2"])
    assert [str(w.message) for w in caught] == [
        "--max-batch is deprecated; use --max-texts-per-request",
        "--max-batch-sentences is deprecated; use --max-sentences-per-call",
        "--batch-size is deprecated; use --rows-per-pass",
    ]
    assert {w.category for w in caught} == {FutureWarning}
    assert vars(old) == vars(new) == {**vars(new), "max_texts_per_request": 4, "max_sentences_per_call": 8}
    with pytest.warns(FutureWarning, match="--format is deprecated; use --export-format"):
        assert subparsers["export"].parse_args(["r", "--format", "onnx", "--output", "o"]).export_format == "onnx"
    assert (
        subparsers["predict"].parse_args(["m", "--input", "i", "--output", "o", "--format", "conll"]).format == "conll"
    )


def test_evaluate_options_are_flags_and_the_old_keys_are_deprecated():
    from nertune.cli import _parsers
    from nertune.evaluation.run import _legacy_options

    args = _parsers()[1]["evaluate"].parse_intermixed_args(
        ["run", "data.test_file=t.conll", "--split", "validation", "--bootstrap", "0", "--name", "n"]
    )
    assert (args.split, args.bootstrap, args.bootstrap_seed, args.name) == ("validation", 0, 0, "n")
    assert args.overrides == ["data.test_file=t.conll"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rest, legacy = _legacy_options(["split=validation", "bootstrap=0", "strict_metrics=true"])
    assert rest == ["strict_metrics=true"] and legacy == {"split": "validation", "bootstrap": 0}
    assert [str(w.message).split(";")[0] for w in caught] == [
        "evaluate: split=validation among the recipe overrides is deprecated",
        "evaluate: bootstrap=0 among the recipe overrides is deprecated",
    ]
