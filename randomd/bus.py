"""The one module that chooses the D-Bus library, and mends what both get wrong.

randomd codes to the dbus-next API.  It runs on Debian's python3-dbus-fast
(compiled, about five times cheaper per call) when that is installed, else on
python3-dbus-next.  RANDOMD_BUS_LIBRARY=dbus_next|dbus_fast forces one (the
tests run on both).  Nothing else in randomd imports either library.

Both libraries' message writers drop the connection when the socket to the
bus is full (EAGAIN), and Debian's dbus-fast sends queued messages in reverse
order; connect() installs FifoWriter instead.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections import deque
from typing import Any

__all__ = [
    "LIBRARY", "Message", "MessageType", "MessageFlag", "BusType", "NameFlag",
    "RequestNameReply", "Variant", "DBusError", "Bus",
    "connect", "call", "FifoWriter", "signature_tree",
]

_PREFERENCE = ("dbus_fast", "dbus_next")


def _import_library() -> tuple[str, Any, Any]:
    forced = os.environ.get("RANDOMD_BUS_LIBRARY")
    names = (forced,) if forced else _PREFERENCE
    for name in names:
        if name not in _PREFERENCE:
            raise ImportError(f"RANDOMD_BUS_LIBRARY must be one of {', '.join(_PREFERENCE)}, not {name!r}")
        try:
            return name, importlib.import_module(name), importlib.import_module(name + ".aio")
        except ImportError:
            if forced:
                raise
    raise ImportError("randomd needs python3-dbus-fast or python3-dbus-next")


LIBRARY, _lib, _aio = _import_library()
log = logging.getLogger("randomd.bus")

Message = _lib.Message
MessageType = _lib.MessageType
MessageFlag = _lib.MessageFlag
BusType = _lib.BusType
NameFlag = _lib.NameFlag
RequestNameReply = _lib.RequestNameReply
Variant = _lib.Variant
DBusError = _lib.DBusError
MessageBus = _aio.MessageBus
_signature = importlib.import_module(LIBRARY + ".signature")
# dbus-fast's compiled marshaller can emit a corrupt message for a body that
# does not match its signature (the bus then drops the connection): verify first.
signature_tree = getattr(_signature, "get_signature_tree", None) or _signature.SignatureTree._get

# dbus-daemon allows 128 calls awaiting a reply per connection; keep our own
# outgoing calls (polkit, GetConnectionUnixUser) well below that.
MAX_PENDING_CALLS = 64


class FifoWriter:
    """A message writer that keeps order and survives a full socket.

    It stands in for the library's ``_MessageWriter`` (same two entry points,
    ``buffer_message`` and ``schedule_write``).  Messages leave in the order
    they were queued; EAGAIN keeps them queued until the socket is writable.
    """

    def __init__(self, bus: Any) -> None:
        self._bus = bus
        self._sock = bus._sock
        self._fd = bus._fd
        self._loop = bus._loop
        self._queue: deque[tuple[memoryview, asyncio.Future | None]] = deque()
        self._offset = 0
        self._polling = False

    def buffer_message(self, msg: Any, future: asyncio.Future | None = None) -> None:
        if msg.unix_fds:
            raise ValueError("randomd does not pass file descriptors")
        self._queue.append((memoryview(msg._marshall(False)), future))

    def schedule_write(self, msg: Any = None, future: asyncio.Future | None = None) -> None:
        if msg is not None:
            if self._bus._disconnected:
                _fail(future, ConnectionError("the bus connection is closed"))
                return
            self.buffer_message(msg, future)
        # Until Hello is answered the library writes directly; then it calls
        # us once with no message to start the queue.
        if self._bus.unique_name and not self._polling:
            self._write()

    def pending(self) -> int:
        """How many messages wait for the socket."""
        return len(self._queue)

    async def drain(self) -> None:
        """Return once every message queued so far has been written."""
        if self._queue:
            last = self._queue[-1][1]
            if last is None:
                last = self._loop.create_future()
                self._queue[-1] = (self._queue[-1][0], last)
            await asyncio.shield(last)

    def _write(self) -> None:
        try:
            while self._queue:
                buf, future = self._queue[0]
                self._offset += self._sock.send(buf[self._offset:])
                if self._offset < len(buf):
                    break
                self._queue.popleft()
                self._offset = 0
                if future is not None and not future.done():
                    future.set_result(None)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as error:
            self._fail_all(error)
            self._bus._finalize(error)
            return
        self._poll(bool(self._queue))

    def _poll(self, wanted: bool) -> None:
        if wanted and not self._polling:
            log.debug("the bus is not reading; %d messages wait", len(self._queue))
            self._loop.add_writer(self._fd, self._write)
        elif not wanted and self._polling:
            self._loop.remove_writer(self._fd)
        self._polling = wanted

    def _fail_all(self, error: Exception) -> None:
        self._polling = False
        while self._queue:
            _fail(self._queue.popleft()[1], error)


def _fail(future: asyncio.Future | None, error: Exception) -> None:
    if future is not None and not future.done():
        future.set_exception(error)


class Bus(MessageBus):
    """The library's asyncio bus, with FifoWriter and a cap on outgoing calls."""

    def __init__(self, address: str | None, bus_type: Any) -> None:
        super().__init__(bus_address=address, bus_type=bus_type)
        self._writer = FifoWriter(self)
        self.call_slots = asyncio.Semaphore(MAX_PENDING_CALLS)

    @property
    def writer(self) -> FifoWriter:
        return self._writer


async def connect(address: str | None = None, system: bool = True) -> Bus:
    """Connect to the bus at *address*, else the system (or session) bus."""
    bus_type = BusType.SYSTEM if system else BusType.SESSION
    return await Bus(address, bus_type).connect()


async def call(bus: Bus, msg: Any, timeout: float) -> Any:
    """Send a method call and return its reply body; raise DBusError on an error reply.

    At most MAX_PENDING_CALLS of these are on the wire at once; the rest
    queue here.  *timeout* covers the queueing too, and raises TimeoutError.
    """
    async with asyncio.timeout(timeout):
        async with bus.call_slots:
            reply = await bus.call(msg)
    if reply.message_type == MessageType.ERROR:
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        raise DBusError(reply.error_name, text, reply)
    return reply.body
