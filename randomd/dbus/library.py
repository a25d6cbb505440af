"""The one module that chooses the D-Bus library, and mends what it gets wrong in place.

randomd codes to the dbus-next API.  It runs on Debian's python3-dbus-fast
(compiled, about five times cheaper per call) when that is installed, else on
python3-dbus-next.  RANDOMD_BUS_LIBRARY=dbus_next|dbus_fast forces one (the
tests run on both).  Nothing else in randomd imports either library: the rest
of randomd.dbus takes the library's names from here.

The transport repairs (connection.py, writer.py) reach into the library's
insides, which change between releases (dbus-fast 5.0 moved the socket and
the writer from MessageBus() into connect()).  check_library() first checks
that the library is laid out as they expect (layout.py), and refuses one it
does not know with UnsupportedLibrary, one sentence naming the library and
its version: mending a layout it does not know could only fail later, once
per message.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..imports import without
from . import layout

__all__ = [
    "LIBRARY", "Message", "MessageType", "MessageFlag", "BusType", "NameFlag",
    "RequestNameReply", "Variant", "DBusError", "MessageBus", "signature_tree",
    "UnsupportedLibrary", "check_library", "library_version", "unsupported",
]

_PREFERENCE = ("dbus_fast", "dbus_next")
_DISTRIBUTIONS = {"dbus_fast": "dbus-fast", "dbus_next": "dbus-next"}


def _import_library() -> tuple[str, Any, Any]:
    forced = os.environ.get("RANDOMD_BUS_LIBRARY")
    names = (forced,) if forced else _PREFERENCE
    for name in names:
        if name not in _PREFERENCE:
            raise ImportError(f"RANDOMD_BUS_LIBRARY must be one of {', '.join(_PREFERENCE)}, "
                              f"not {name!r}")
        try:
            # Both libraries import their GLib integration from their
            # __init__, and it imports PyGObject if it can (a sixth of
            # randomd's start-up and 2 MiB); without gi it stays unusable.
            with without("gi"):
                return name, importlib.import_module(name), importlib.import_module(name + ".aio")
        except ImportError:
            if forced:
                raise
    raise ImportError("randomd needs python3-dbus-fast or python3-dbus-next")


LIBRARY, _lib, _aio = _import_library()

Message = _lib.Message
MessageType = _lib.MessageType
MessageFlag = _lib.MessageFlag
BusType = _lib.BusType
NameFlag = _lib.NameFlag
RequestNameReply = _lib.RequestNameReply
Variant = _lib.Variant
DBusError = _lib.DBusError
if TYPE_CHECKING:
    # The libraries ship no types, and a variable cannot be a base class (Bus).
    MessageBus = Any
else:
    MessageBus = _aio.MessageBus
_FLAG_MAP = getattr(importlib.import_module(LIBRARY + ".constants"), "MESSAGE_FLAG_MAP", None)
if LIBRARY == "dbus_fast" and isinstance(_FLAG_MAP, dict):
    # dbus-fast 1.84 looks a message's flags up in a table of single flags:
    # a call with two (busctl --expect-reply=no sends 5), or with a bit D-Bus
    # does not define yet, raises KeyError in its reader, which drops the
    # connection (dbus-fast issue 239, fixed upstream by PR 241).
    _FLAG_MAP.update({value: MessageFlag(value) for value in range(256)})
_signature = importlib.import_module(LIBRARY + ".signature")
# dbus-fast's compiled marshaller can emit a corrupt message for a body that
# does not match its signature (the bus then drops the connection): verify first.
# None in a library that check_library (so connect()) refuses.
signature_tree: Callable[[str], Any] | None = (
    getattr(_signature, "get_signature_tree", None)
    or getattr(getattr(_signature, "SignatureTree", None), "_get", None))


class UnsupportedLibrary(Exception):
    """The bus library is not laid out as randomd.dbus expects: one sentence, naming it."""


_UNCHECKED = object()
_layout_problem: object = _UNCHECKED


def library_version() -> str:
    """The version of the bus library in use, as its package states it."""
    try:
        if LIBRARY == "dbus_fast":
            return importlib.import_module("dbus_fast.__version__").__version__
        from importlib.metadata import version
        return version(_DISTRIBUTIONS[LIBRARY])
    except Exception:  # the version only labels the message; never fail for it
        return "(version unknown)"


def unsupported(problem: str) -> UnsupportedLibrary:
    """The UnsupportedLibrary for *problem*, naming the library, its version and what is known."""
    return UnsupportedLibrary(f"{_DISTRIBUTIONS[LIBRARY]} {library_version()} is not supported: "
                              f"{problem} (randomd knows {layout.KNOWN})")


def check_library() -> None:
    """Raise UnsupportedLibrary unless the library has all that Bus replaces and mends."""
    global _layout_problem
    if _layout_problem is _UNCHECKED:
        _layout_problem = layout.layout_problem(
            sys.modules[MessageBus.__module__], flag_map=_FLAG_MAP,
            needs_flag_map=LIBRARY == "dbus_fast", signature_tree=signature_tree)
    if _layout_problem is not None:
        raise unsupported(str(_layout_problem))
