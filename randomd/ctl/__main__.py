"""python3 -m randomd.ctl: randomctl."""

import sys

from . import main

sys.exit(main())
