"""randomd's self-written D-Bus layer: the one place that imports a bus library.

The rest of randomd (manager, job objects, callers, polkit, the daemon, the
client library and randomctl) sits above it and knows the library only
through it.

- library.py: chooses dbus-fast or dbus-next, names what randomd uses of
  it, mends its flag table, and checks it is laid out as expected
  (layout.py, which imports no bus library).
- connection.py: Bus, the library's MessageBus with its transport repaired;
  connect(), call() and error_text().  writer.py: FifoWriter, the writer Bus puts in the
  place of the library's.
- interface.py: how objects declare their interfaces (Interface, @method,
  @dbus_property, Signal) and the Call a handler gets.
- tree.py: ObjectTree, the exported objects and the dispatch of every call,
  with the standard interfaces and the mapping of errors to D-Bus errors.
- introspection.py: the Introspect XML.

What talking on a bus needs is named here too (``from randomd import dbus``,
then ``dbus.connect()``, ``dbus.Message``); declaring and exporting objects
is imported from interface.py and tree.py.
"""

from __future__ import annotations

from .connection import MAX_PENDING_CALLS, Bus, call, connect, error_text
from .library import (
    LIBRARY,
    BusType,
    DBusError,
    Message,
    MessageFlag,
    MessageType,
    NameFlag,
    RequestNameReply,
    UnsupportedLibrary,
    Variant,
    check_library,
    signature_tree,
)

__all__ = [
    "LIBRARY", "Message", "MessageType", "MessageFlag", "BusType", "NameFlag",
    "RequestNameReply", "Variant", "DBusError", "Bus", "MAX_PENDING_CALLS",
    "connect", "call", "error_text", "signature_tree", "UnsupportedLibrary", "check_library",
]
