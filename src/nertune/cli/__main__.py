"""`python -m nertune.cli COMMAND ...` (e.g. under `accelerate launch -m nertune.cli predict ...`)."""

import sys

from nertune.cli import main

sys.exit(main())
