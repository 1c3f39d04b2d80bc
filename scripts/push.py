"""python scripts/push.py RUN_DIR --repo-id owner/name  (same as `nertune push`)."""

import sys

from nertune.cli import main

if __name__ == "__main__":
    sys.exit(main(["push", *sys.argv[1:]]))
