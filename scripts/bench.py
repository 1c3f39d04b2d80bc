"""python scripts/bench.py [RECIPE.yaml] [key=value ...]  (same as `nertune bench`)."""

import sys

from nertune.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
