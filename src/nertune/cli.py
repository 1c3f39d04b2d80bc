"""`nertune train RECIPE.yaml [key=value ...]`, `nertune evaluate MODEL_DIR [key=value ...]`."""

from __future__ import annotations

import argparse
import logging
import sys


def _setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def train_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nertune train", description="Fine-tune a token-classification model.")
    parser.add_argument("recipe", help="recipe YAML file (recipes/*.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, dotted for nesting (data.train_file=...)")
    args = parser.parse_args(argv)
    from .config import load_recipe
    from .train import run_training

    run_training(load_recipe(args.recipe, args.overrides))
    return 0


def evaluate_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nertune evaluate", description="Evaluate a trained model directory.")
    parser.add_argument("model_dir", help="a run directory written by `nertune train`")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (data.test_file=..., split=test)")
    args = parser.parse_args(argv)
    from .evaluation import run_evaluation

    run_evaluation(args.model_dir, args.overrides)
    return 0


COMMANDS = {"train": train_main, "evaluate": evaluate_main}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        names = "|".join(COMMANDS)
        print(f"usage: nertune {{{names}}} ...", file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    _setup_logging()
    try:
        return COMMANDS[argv[0]](argv[1:])
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        logging.getLogger("nertune").error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
