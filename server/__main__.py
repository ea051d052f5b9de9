"""`python -m wattson`: the same as the `wattson` command (the local agent is started this way)."""

import sys

from .cli import main

sys.exit(main())
