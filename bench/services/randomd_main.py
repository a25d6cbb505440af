"""randomd as its installed entry point starts it (the console script of pyproject.toml)."""

import sys

from randomd.daemon import main

sys.exit(main())
