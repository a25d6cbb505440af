"""The one module that chooses the D-Bus library, and mends what both get wrong.

randomd codes to the dbus-next API.  It runs on Debian's python3-dbus-fast
(compiled, about five times cheaper per call) when that is installed, else on
python3-dbus-next.  RANDOMD_BUS_LIBRARY=dbus_next|dbus_fast forces one (the
tests run on both).  Nothing else in randomd imports either library.

Both libraries' message writers drop the connection when the socket to the
bus is full (EAGAIN), and Debian's dbus-fast sends queued messages in reverse
order; Bus puts FifoWriter in the place of the library's writer.

That reaches into the library's insides, which change between releases
(dbus-fast 5.0 moved the socket and the writer from MessageBus() into
connect()).  connect() first checks that the library is laid out as bus.py
expects, and refuses one it does not know with UnsupportedLibrary, one
sentence naming the library and its version: mending a layout it does not
know could only fail later, once per message.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any

from . import bus_layout
from .imports import without

__all__ = [
    "LIBRARY", "Message", "MessageType", "MessageFlag", "BusType", "NameFlag",
    "RequestNameReply", "Variant", "DBusError", "Bus",
    "connect", "call", "FifoWriter", "signature_tree", "UnsupportedLibrary", "check_library",
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
log = logging.getLogger("randomd.bus")

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

# dbus-daemon allows 128 calls awaiting a reply per connection; keep our own
# outgoing calls (polkit, GetConnectionUnixUser) well below that.
MAX_PENDING_CALLS = 64
# At most this many messages per sendmsg(2) (the kernel takes up to 1024 buffers).
_MAX_BUFFERS = 256


class FifoWriter:
    """A message writer that keeps order and survives a full socket.

    It stands in for the library's ``_MessageWriter`` (same two entry points,
    ``buffer_message`` and ``schedule_write``).  Messages leave in the order
    they were queued; EAGAIN keeps them queued until the socket is writable.

    Several queued messages leave in one sendmsg(2).  randomd's own replies
    and signals go through post(): while the bus's incoming messages are
    being read (hold/release, around the library's reader) they wait for the
    end of that read, otherwise for the end of the current turn of the event
    loop, so that a burst of replies or signals costs one system call, not
    one each.  schedule_write (the library's sends) writes at once unless
    held, after whatever was posted before it.

    When the connection is lost (closed()), every queued message fails with
    the reason and drain() returns it: nothing waits for a socket that is gone.
    """

    def __init__(self, bus: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._bus = bus
        self._sock = bus._sock
        self._fd = bus._fd
        self._loop = bus._loop if loop is None else loop
        self._queue: deque[tuple[bytes, asyncio.Future | None]] = deque()
        self._offset = 0  # bytes of the first queued message already sent
        self._polling = False
        self._held = 0
        self._flush_due = False

    def buffer_message(self, msg: Any, future: asyncio.Future | None = None) -> None:
        if msg.unix_fds:
            raise ValueError("randomd does not pass file descriptors")
        self._queue.append((msg._marshall(False), future))

    def schedule_write(self, msg: Any = None, future: asyncio.Future | None = None) -> None:
        if msg is not None:
            if self._bus._disconnected:
                _fail(future, ConnectionError("the bus connection is closed"))
                return
            self.buffer_message(msg, future)
        # Until Hello is answered the library writes directly; then it calls
        # us once with no message to start the queue.
        if self._bus.unique_name and not self._polling and not self._held:
            self._write()

    def post(self, msg: Any) -> None:
        """Queue one of randomd's own messages; it leaves soon, in order, with others."""
        if self._bus._disconnected:
            log.debug("not sent, the bus connection is closed: %s", msg.member or msg.message_type)
            return
        if not msg.serial:
            msg.serial = self._bus.next_serial()
        self.buffer_message(msg)
        if not self._held and not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def hold(self) -> None:
        """Keep posted messages queued until release() (the library reads a burst)."""
        self._held += 1

    def release(self) -> None:
        self._held -= 1
        if not self._held and self._queue and not self._polling and self._bus.unique_name:
            self._write()

    def pending(self) -> int:
        """How many messages wait for the socket."""
        return len(self._queue)

    @property
    def congested(self) -> bool:
        """True while the bus does not keep up: the socket is full and messages wait."""
        return self._polling

    async def drain(self) -> None:
        """Return once every message queued so far has been written.

        Raises the reason (an OSError) if the connection is lost first.
        """
        if self._queue:
            last = self._queue[-1][1]
            if last is None:
                last = self._loop.create_future()
                # Retrieved here, so that a drain() cancelled meanwhile does
                # not leave an exception that nobody reads.
                last.add_done_callback(lambda f: f.cancelled() or f.exception())
                self._queue[-1] = (self._queue[-1][0], last)
            await asyncio.shield(last)

    def closed(self, error: OSError) -> None:
        """The connection is gone: fail every queued message with *error*."""
        self._fail_all(error)

    def _flush(self) -> None:
        self._flush_due = False
        if self._queue and not self._polling and not self._held and self._bus.unique_name:
            self._write()

    def _write(self) -> None:
        queue = self._queue
        try:
            while queue:
                buffers: list[bytes | memoryview]
                if len(queue) == 1:
                    buffers = [queue[0][0]]
                else:
                    buffers = [entry[0] for entry in islice(queue, _MAX_BUFFERS)]
                if self._offset:
                    buffers[0] = memoryview(buffers[0])[self._offset:]
                sent = self._sock.sendmsg(buffers)
                complete = sent == sum(map(len, buffers))
                self._consume(sent)
                if not complete:
                    break  # the socket is full
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as error:
            self._fail_all(error)
            self._bus._finalize(error)
            return
        self._poll(bool(queue))

    def _consume(self, sent: int) -> None:
        """Drop the messages the last *sent* bytes completed; resolve their futures."""
        queue = self._queue
        sent += self._offset
        while queue:
            size = len(queue[0][0])
            if sent < size:
                break
            sent -= size
            future = queue.popleft()[1]
            if future is not None and not future.done():
                future.set_result(None)
        self._offset = sent

    def _poll(self, wanted: bool) -> None:
        if wanted and not self._polling:
            log.debug("the bus is not reading; %d messages wait", len(self._queue))
            self._loop.add_writer(self._fd, self._write)
        elif not wanted and self._polling:
            self._loop.remove_writer(self._fd)
        self._polling = wanted

    def _fail_all(self, error: Exception) -> None:
        self._poll(False)
        self._offset = 0
        while self._queue:
            _fail(self._queue.popleft()[1], error)


def _fail(future: asyncio.Future | None, error: Exception) -> None:
    if future is not None and not future.done():
        future.set_exception(error)


class UnsupportedLibrary(Exception):
    """The bus library is not laid out as randomd.bus expects: one sentence, naming it."""


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


def _unsupported(problem: str) -> UnsupportedLibrary:
    return UnsupportedLibrary(f"{_DISTRIBUTIONS[LIBRARY]} {library_version()} is not supported: "
                              f"{problem} (randomd knows {bus_layout.KNOWN})")


def check_library() -> None:
    """Raise UnsupportedLibrary unless the library has all that Bus replaces and mends."""
    global _layout_problem
    if _layout_problem is _UNCHECKED:
        _layout_problem = bus_layout.layout_problem(
            sys.modules[MessageBus.__module__], flag_map=_FLAG_MAP,
            needs_flag_map=LIBRARY == "dbus_fast", signature_tree=signature_tree)
    if _layout_problem is not None:
        raise _unsupported(str(_layout_problem))


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
        except AttributeError as error:  # bus_layout could not see this one
            raise _unsupported(f"its MessageBus has no {error.name}") from None

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
            raise _unsupported("its MessageBus did not make its writer")
        return self

    def _wrap_reader(self, reader: Any) -> Any:
        writer = self._fifo
        if writer is None:  # else each read would fail, and the loop call it again
            raise _unsupported("its MessageBus adds its reader before its writer")

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
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        raise DBusError(reply.error_name, text, reply)
    return reply.body
