"""`make bench`: python scripts/bench.py [RECIPE.yaml] [key=value ...] [--f1-seeds N] [--bert-base-steps N]
[--target-eval-steps N].

BENCH_BERT_BASE=0 in the environment (or --bert-base-steps 0) skips the bert-base-size training comparison.

The benchmark harness lives in bench/ beside src/, outside the installed package.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import run_bench  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="make bench", description="Project vs plain Trainer / pipeline(): speed, F1, MFU."
    )
    parser.add_argument("recipe", nargs="?", default=None, help="recipe YAML (default recipes/quickstart.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value recipe overrides, applied to both sides")
    parser.add_argument(
        "--f1-seeds",
        type=int,
        default=3,
        help="training runs per side whose test F1 is averaged (one run's F1 moves by points with the seed)",
    )
    parser.add_argument(
        "--bert-base-steps",
        type=int,
        default=0 if os.environ.get("BENCH_BERT_BASE") == "0" else 30,
        help="optimizer steps per side on a random bert-base-size encoder (MFU, speedup); 0 skips it",
    )
    parser.add_argument(
        "--target-eval-steps",
        type=int,
        default=10,
        help="optimizer steps between the project's validation evaluations while timing it to the baseline's F1 "
        "(the time is exact to that many steps; evaluations do not change the training)",
    )
    args = parser.parse_args()
    run_bench(
        args.recipe,
        args.overrides,
        f1_seeds=args.f1_seeds,
        bert_base_steps=args.bert_base_steps,
        target_eval_steps=args.target_eval_steps,
    )
