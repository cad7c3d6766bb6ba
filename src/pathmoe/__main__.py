"""`python -m pathmoe ...`: the `pathmoe` command, for environments whose scripts directory is not on PATH."""

import sys

from pathmoe.cli import main

sys.exit(main())
