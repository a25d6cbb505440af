"""python3 -m randomd: the daemon."""

import sys

from .daemon import main

sys.exit(main())
