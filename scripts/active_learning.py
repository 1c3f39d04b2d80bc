"""python scripts/active_learning.py [--seed-size N] [--step N] [--rounds N] [--epochs N]: `make active-learning`.

The harness lives in bench/ beside src/, outside the installed package.
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.active_learning import run_active_learning  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="make active-learning", description="Uncertainty vs random selection over simulated annotation rounds."
    )
    parser.add_argument("--out", default="runs/active-learning", help="where the rounds' models go")
    parser.add_argument("--seed-size", type=int, default=100, help="labelled sentences before the first round")
    parser.add_argument("--step", type=int, default=50, help="sentences selected per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6, help="training epochs of every round's model")
    parser.add_argument(
        "--pool-size", type=int, default=1000, help="a seeded sample of the training split as the pool (0: all of it)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    run_active_learning(
        args.out,
        seed_size=args.seed_size,
        step=args.step,
        rounds=args.rounds,
        seed=args.seed,
        pool_size=args.pool_size,
        epochs=args.epochs,
    )
