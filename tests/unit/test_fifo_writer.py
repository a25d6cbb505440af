"""FifoWriter alone, on a real socket pair whose reader stops reading.

The stand-in bus carries only the attributes the writer reads; the real bus
and a stopped dbus-daemon are in tests/integration/test_stall.py.
"""

from __future__ import annotations

import asyncio
import socket

from randomd.bus import FifoWriter, Message, MessageType

PAYLOAD = 64 * 1024


class StandInBus:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = asyncio.get_running_loop()
        self._disconnected = False
        self.unique_name = ":1.1"
        self.finalized: Exception | None = None

    def _finalize(self, error: Exception) -> None:
        self.finalized = error


def signal_message(index: int) -> Message:
    return Message(message_type=MessageType.SIGNAL, path="/t", interface="t.T", member="S",
                   signature="uay", body=[index, bytes(PAYLOAD)], serial=index + 1)


async def read_all(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < size:
        data += await loop.sock_recv(sock, 1 << 20)
    return bytes(data)


async def test_a_full_socket_keeps_messages_queued_instead_of_failing():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    bus = StandInBus(ours)
    writer = FifoWriter(bus)
    for index in range(40):  # 2.5 MiB against a socket buffer of about 200 KiB
        writer.schedule_write(signal_message(index))
    assert writer.pending() > 0 and bus.finalized is None
    expected = b"".join(bytes(signal_message(i)._marshall(False)) for i in range(40))
    assert await asyncio.wait_for(read_all(theirs, len(expected)), 10) == expected
    await asyncio.wait_for(writer.drain(), 10)
    assert writer.pending() == 0 and bus.finalized is None


async def test_messages_leave_in_the_order_they_were_queued():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    writer = FifoWriter(StandInBus(ours))
    messages = [signal_message(index) for index in range(10)]
    for msg in messages:
        writer.schedule_write(msg)
    expected = b"".join(bytes(m._marshall(False)) for m in messages)
    assert await asyncio.wait_for(read_all(theirs, len(expected)), 10) == expected


async def test_a_closed_peer_finalizes_the_bus_and_fails_the_futures():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.close()
    bus = StandInBus(ours)
    writer = FifoWriter(bus)
    future = asyncio.get_running_loop().create_future()
    writer.schedule_write(signal_message(0), future)
    assert isinstance(bus.finalized, OSError)
    assert isinstance(future.exception(), OSError)
