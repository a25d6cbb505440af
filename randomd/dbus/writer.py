"""FifoWriter: the message writer randomd puts in the place of the library's.

Both libraries' message writers drop the connection when the socket to the
bus is full (EAGAIN), and Debian's dbus-fast sends queued messages in reverse
order.  Bus (connection.py) makes a FifoWriter instead; this module needs no
bus library, only the few attributes of the bus it reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from itertools import islice
from typing import Any

__all__ = ["FifoWriter"]

log = logging.getLogger("randomd.bus")

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
                if len(queue) == 1:  # send(2) costs less than sendmsg(2)
                    data: bytes | memoryview = queue[0][0]
                    if self._offset:
                        data = memoryview(data)[self._offset:]
                    sent = self._sock.send(data)
                    complete = sent == len(data)
                else:
                    buffers: list[bytes | memoryview] = [
                        entry[0] for entry in islice(queue, _MAX_BUFFERS)]
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
