"""The connection to the bus: the library's MessageBus with its transport repaired.

Bus puts FifoWriter (writer.py) in the place of the library's message
writer, batches what randomd sends while the library reads a burst, breaks a
reference cycle of dbus-next's reader, and caps randomd's own outgoing calls.
That reaches into the library's insides: connect() checks them first
(library.check_library()).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .library import BusType, DBusError, MessageBus, MessageType, check_library, unsupported
from .writer import FifoWriter

__all__ = ["Bus", "connect", "call", "MAX_PENDING_CALLS"]

# dbus-daemon allows 128 calls awaiting a reply per connection; keep our own
# outgoing calls (polkit, GetConnectionUnixUser) well below that.
MAX_PENDING_CALLS = 64


class Bus(MessageBus):
    """The library's asyncio bus, with FifoWriter and a cap on outgoing calls."""

    # The library's: its event loop, or a _ReaderHook of it while connecting.
    _loop: Any

    def __init__(self, address: str | None, bus_type: Any) -> None:
        self._fifo: FifoWriter | None = None
        # The real loop: while connecting, the library's self._loop is a _ReaderHook.
        self._event_loop = asyncio.get_running_loop()
        super().__init__(bus_address=address, bus_type=bus_type)
        self.call_slots = asyncio.Semaphore(MAX_PENDING_CALLS)

    @property
    def _writer(self) -> FifoWriter | None:
        return self._fifo

    @_writer.setter
    def _writer(self, library_writer: Any) -> None:
        # The library makes its _MessageWriter once its socket exists: in
        # MessageBus() up to dbus-fast 4 and in dbus-next, in connect() from
        # dbus-fast 5.0 (and sets None if connecting fails).  Ours takes its place.
        if library_writer is None:
            self._fifo = None
            return
        try:
            self._fifo = FifoWriter(self, self._event_loop)
        except AttributeError as error:  # layout.py could not see this one
            raise unsupported(f"its MessageBus has no {error.name}") from None

    @property
    def writer(self) -> FifoWriter:
        assert self._fifo is not None, "not connected"
        return self._fifo

    def _create_unmarshaller(self) -> Any:
        # dbus-next's Unmarshaller holds bound methods of itself (a cycle):
        # the last message's buffer and body would wait for the cyclic
        # garbage collector, and a client sending large messages could grow
        # randomd by tens of MiB each.  Break the cycle of the one just used.
        readers = getattr(getattr(self, "_unmarshaller", None), "readers", None)
        if isinstance(readers, dict):
            readers.clear()
        return super()._create_unmarshaller()

    def post(self, msg: Any) -> None:
        """Send a reply or a signal: like send(), without a future, in a batch."""
        self._fifo.post(msg)  # type: ignore[union-attr]  # connected

    def _finalize(self, err: Exception | None = None) -> None:
        # The library's reader calls this when the bus closes the connection;
        # it forgets the writer's poll but not the writer's queue.
        if self._fifo is not None:
            self._fifo.closed(err if isinstance(err, OSError)
                              else ConnectionError("the bus closed the connection"))
        super()._finalize(err)

    async def connect(self) -> Bus:
        # The library adds its message reader to the event loop while it
        # connects: wrap that reader so that what is posted while it reads a
        # burst of messages leaves in one write at its end.
        loop = self._loop
        self._loop = _ReaderHook(loop, self)
        try:
            await super().connect()
        finally:
            self._loop = loop
        if self._fifo is None:
            self.disconnect()
            raise unsupported("its MessageBus did not make its writer")
        return self

    def _wrap_reader(self, reader: Any) -> Any:
        writer = self._fifo
        if writer is None:  # else each read would fail, and the loop call it again
            raise unsupported("its MessageBus adds its reader before its writer")

        def read() -> None:
            writer.hold()
            try:
                reader()
            finally:
                writer.release()

        return read


class _ReaderHook:
    """The event loop as the library sees it while it connects: add_reader wraps."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bus: Bus) -> None:
        self._real_loop = loop
        self._bus = bus

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real_loop, name)

    def add_reader(self, fd: int, callback: Any, *args: Any) -> Any:
        if fd == self._bus._fd and not args:
            callback = self._bus._wrap_reader(callback)
        return self._real_loop.add_reader(fd, callback, *args)


async def connect(address: str | None = None, system: bool = True) -> Bus:
    """Connect to the bus at *address*, else the system (or session) bus.

    Raises UnsupportedLibrary first if the bus library is one randomd does not know.
    """
    check_library()
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
        raise DBusError(reply.error_name, error_text(reply), reply)
    return reply.body


def error_text(reply: Any) -> str:
    """The sentence of an error reply: its first argument, if that is a string, else ""."""
    return reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
