"""python scripts/evaluate.py MODEL_DIR [key=value ...]  (same as `nertune evaluate`)."""

import sys

from nertune.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
