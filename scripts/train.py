"""python scripts/train.py RECIPE.yaml [key=value ...]  (same as `nertune train`)."""

import sys

from nertune.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
