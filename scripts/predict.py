"""python scripts/predict.py MODEL_DIR --input FILE --output FILE [...]  (same as `nertune predict`)."""

import sys

from nertune.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
