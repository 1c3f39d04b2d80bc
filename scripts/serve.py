"""python scripts/serve.py MODEL_DIR [--host H] [--port N] [...]  (same as `nertune serve`)."""

import sys

from nertune.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
