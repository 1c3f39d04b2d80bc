"""python scripts/select.py MODEL_DIR --pool FILE --count N --output FILE [...]  (same as `nertune select`)."""

import sys

from nertune.cli import main

if __name__ == "__main__":
    sys.exit(main(["select", *sys.argv[1:]]))
