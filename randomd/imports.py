"""Start-up: keep out the modules that the modules randomd needs would import for nothing."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def without(*names: str) -> Iterator[None]:
    """Make ``import NAME`` raise ImportError inside the block, for *names* not loaded yet.

    For modules that import an optional dependency when they can and work
    without it.  Afterwards *names* can be imported again, by whoever needs
    them; what was imported inside the block keeps doing without.
    """
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
