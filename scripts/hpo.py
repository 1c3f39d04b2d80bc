"""python scripts/hpo.py RECIPE.yaml [key=value ...]  (same as `nertune hpo`)."""

import sys

from nertune.cli import main

if __name__ == "__main__":
    sys.exit(main(["hpo", *sys.argv[1:]]))
