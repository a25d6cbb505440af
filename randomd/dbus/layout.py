"""What randomd.dbus replaces inside the bus library, and the check that it is there.

Bus (connection.py) puts FifoWriter in the place of the library's message
writer, wraps the library's message reader as connect() adds it to the event
loop, and mends a table of dbus-fast's.  None of that is the library's API:
it is how the library is written inside, and it changes between releases
(dbus-fast 5.0 moved the writer from MessageBus() into connect()).  Whatever
moved, randomd must refuse to run rather than mend the wrong thing, which
fails later once per message.  Nothing here imports a bus library.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

# The releases whose layout this module describes (pyproject.toml's bounds).
KNOWN = "dbus-fast 1.84 to 5.x and dbus-next 0.2.3"

# What the library calls on its writer: FifoWriter has exactly these.
WRITER_METHODS = frozenset({"buffer_message", "schedule_write"})
# The library's methods that Bus overrides or that randomd calls.
BUS_METHODS = ("connect", "_finalize", "next_serial", "send", "call", "disconnect",
               "add_message_handler", "request_name", "release_name", "wait_for_disconnect")
# Bus's _writer property catches this assignment, wherever the library makes it.
MAKES_WRITER = "self._writer = _MessageWriter(self)"
# Bus wraps the reader the library adds like this while it connects.
ADDS_READER = "self._loop.add_reader("
_WRITER_CALL = re.compile(r"\b_writer\.(\w+)")


def layout_problem(module: ModuleType, flag_map: object = None,
                   needs_flag_map: bool = False, signature_tree: object = len) -> str | None:
    """What in the library's asyncio *module* (``<library>.aio.message_bus``) is
    not as randomd.dbus expects, in a few words; None if all is.

    *flag_map* is dbus-fast's ``constants.MESSAGE_FLAG_MAP`` (*needs_flag_map*:
    library.py mends it), *signature_tree* the library's cached signature parser.
    """
    bus_class = getattr(module, "MessageBus", None)
    writer = getattr(module, "_MessageWriter", None)
    if not isinstance(bus_class, type):
        return "it has no asyncio MessageBus class"
    if not isinstance(writer, type):
        return "it has no _MessageWriter for randomd to replace"
    for name in sorted(WRITER_METHODS):
        if not callable(getattr(writer, name, None)):
            return f"its _MessageWriter has no {name}()"
    for name in BUS_METHODS:
        if not callable(getattr(bus_class, name, None)):
            return f"its MessageBus has no {name}()"
    source = _source(module)
    if source is None:
        return f"its {module.__name__} has no Python source to check"
    if MAKES_WRITER not in source:
        return f"its MessageBus no longer makes its writer as {MAKES_WRITER!r}"
    if ADDS_READER not in source:
        return "its MessageBus no longer adds its reader to its event loop"
    unknown = set(_WRITER_CALL.findall(source)) - WRITER_METHODS
    if unknown:
        return f"its MessageBus calls _writer.{min(unknown)}(), which randomd's writer lacks"
    if needs_flag_map and not isinstance(flag_map, dict):
        return "it has no constants.MESSAGE_FLAG_MAP to mend"
    if not callable(signature_tree):
        return "it has no cached signature parser"
    return None


def _source(module: ModuleType) -> str | None:
    """The module's Python source, or None if it is compiled or unreadable."""
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
