"""python scripts/retrain.py RUN --new FILE [--new FILE ...] [key=value ...]  (same as `nertune retrain`)."""

import sys

from nertune.cli import main

if __name__ == "__main__":
    sys.exit(main(["retrain", *sys.argv[1:]]))
