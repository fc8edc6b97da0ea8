"""python -m mflow: the suite's command (mflow.reports.__main__; --help)."""

import sys

from mflow.reports.__main__ import main

sys.exit(main())
