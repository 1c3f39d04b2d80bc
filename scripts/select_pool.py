"""python scripts/select_pool.py MODEL_DIR --pool FILE --count N --output FILE [...]  (same as `nertune select`).

Not scripts/select.py: running any script of this folder puts it first on sys.path, where a select.py
would shadow the standard library's `select` module (subprocess imports it).
"""

import sys

from nertune.cli import main

if __name__ == "__main__":
    sys.exit(main(["select", *sys.argv[1:]]))
