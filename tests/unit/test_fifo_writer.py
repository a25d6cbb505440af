"""FifoWriter alone, on a real socket pair whose reader stops reading.

The stand-in bus carries only the attributes the writer reads; the real bus
and a stopped dbus-daemon are in tests/integration/test_stall.py.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from randomd.dbus import Message, MessageType
from randomd.dbus.writer import FifoWriter

PAYLOAD = 64 * 1024


class StandInBus:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = asyncio.get_running_loop()
        self._disconnected = False
        self.unique_name = ":1.1"
        self.finalized: Exception | None = None
        self._serial = 0

    def _finalize(self, error: Exception) -> None:
        self.finalized = error

    def next_serial(self) -> int:
        self._serial += 1
        return self._serial


class CountingSocket:
    """A socket that counts the sendmsg(2) calls made on it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sendmsg_calls = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def sendmsg(self, buffers) -> int:
        self.sendmsg_calls += 1
        return self._sock.sendmsg(buffers)


def socket_pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    return ours, theirs


def signal_message(index: int) -> Message:
    return Message(message_type=MessageType.SIGNAL, path="/t", interface="t.T", member="S",
                   signature="uay", body=[index, bytes(PAYLOAD)], serial=index + 1)


def small_signal(index: int) -> Message:
    return Message(message_type=MessageType.SIGNAL, path="/t", interface="t.T", member="S",
                   signature="u", body=[index])


def wire(messages: list[Message]) -> bytes:
    return b"".join(bytes(m._marshall(False)) for m in messages)


def readable_now(sock: socket.socket) -> bytes:
    """What the peer can read without waiting."""
    try:
        return sock.recv(1 << 20)
    except BlockingIOError:
        return b""


async def next_loop_turn() -> None:
    """Return after the callbacks already scheduled with call_soon have run."""
    future = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.set_result, None)
    await future


async def read_all(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < size:
        data += await loop.sock_recv(sock, min(1 << 20, size - len(data)))
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


async def test_posted_messages_leave_in_order_with_scheduled_ones():
    ours, theirs = socket_pair()
    writer = FifoWriter(StandInBus(ours))
    messages = [small_signal(index) for index in range(3)]
    writer.post(messages[0])
    writer.schedule_write(messages[1])
    writer.post(messages[2])
    expected = wire(messages)
    assert await asyncio.wait_for(read_all(theirs, len(expected)), 10) == expected


async def test_posted_messages_wait_behind_a_full_socket_and_leave_in_order_once_the_peer_reads():
    ours, theirs = socket_pair()
    writer = FifoWriter(StandInBus(ours))
    messages = [signal_message(index) for index in range(40)]
    for msg in messages[:20]:  # 1.25 MiB against a socket buffer of about 200 KiB
        writer.schedule_write(msg)
    waiting = writer.pending()
    assert waiting > 0  # the socket is full
    for index, msg in enumerate(messages[20:]):
        if index % 2:
            writer.schedule_write(msg)
        else:
            writer.post(msg)
    await next_loop_turn()  # the posted messages' flush has run against the full socket
    assert writer.pending() == waiting + 20
    expected = wire(messages)
    assert await asyncio.wait_for(read_all(theirs, len(expected)), 10) == expected


async def test_a_posted_message_without_serial_gets_the_next_one():
    ours, theirs = socket_pair()
    writer = FifoWriter(StandInBus(ours))
    msg = small_signal(0)
    writer.post(msg)
    assert msg.serial == 1


async def test_posted_messages_wait_for_the_end_of_the_loop_turn_and_leave_in_one_write():
    ours, theirs = socket_pair()
    bus = StandInBus(ours)
    bus._sock = counting = CountingSocket(ours)
    writer = FifoWriter(bus)
    messages = [small_signal(index) for index in range(5)]
    for msg in messages:
        writer.post(msg)
    assert readable_now(theirs) == b"" and writer.pending() == 5
    await next_loop_turn()
    assert readable_now(theirs) == wire(messages)
    assert counting.sendmsg_calls == 1


async def test_messages_posted_while_held_leave_together_at_release():
    ours, theirs = socket_pair()
    bus = StandInBus(ours)
    bus._sock = counting = CountingSocket(ours)
    writer = FifoWriter(bus)
    messages = [small_signal(index) for index in range(5)]
    writer.hold()
    for msg in messages:
        writer.post(msg)
    await next_loop_turn()
    assert readable_now(theirs) == b"" and counting.sendmsg_calls == 0
    writer.release()
    assert readable_now(theirs) == wire(messages)
    assert counting.sendmsg_calls == 1


async def test_a_write_scheduled_while_held_waits_for_release_behind_the_posted_messages():
    ours, theirs = socket_pair()
    writer = FifoWriter(StandInBus(ours))
    messages = [small_signal(index) for index in range(3)]
    writer.hold()
    writer.post(messages[0])
    writer.schedule_write(messages[1])
    writer.post(messages[2])
    assert readable_now(theirs) == b""
    writer.release()
    assert readable_now(theirs) == wire(messages)


async def test_nested_holds_keep_posted_messages_until_the_last_release():
    ours, theirs = socket_pair()
    writer = FifoWriter(StandInBus(ours))
    msg = small_signal(0)
    writer.hold()
    writer.hold()
    writer.post(msg)
    writer.release()
    await next_loop_turn()
    assert readable_now(theirs) == b""
    writer.release()
    assert readable_now(theirs) == wire([msg])


async def test_the_writer_is_congested_only_while_the_peer_does_not_read():
    ours, theirs = socket_pair()
    writer = FifoWriter(StandInBus(ours))
    assert not writer.congested
    messages = [signal_message(index) for index in range(40)]  # 2.5 MiB: the socket fills
    for msg in messages:
        writer.post(msg)
    await next_loop_turn()
    assert writer.congested and writer.pending() > 0
    expected = wire(messages)
    assert await asyncio.wait_for(read_all(theirs, len(expected)), 10) == expected
    await asyncio.wait_for(writer.drain(), 10)
    assert not writer.congested and writer.pending() == 0


async def test_messages_waiting_only_for_the_end_of_the_loop_turn_are_not_congestion():
    ours, theirs = socket_pair()
    writer = FifoWriter(StandInBus(ours))
    writer.post(small_signal(0))
    assert writer.pending() == 1 and not writer.congested


async def test_drain_returns_only_once_the_peer_has_read_every_message():
    ours, theirs = socket_pair()
    writer = FifoWriter(StandInBus(ours))
    messages = [signal_message(index) for index in range(40)]  # 2.5 MiB: the socket fills
    for msg in messages:
        writer.post(msg)
    await next_loop_turn()
    drained = asyncio.ensure_future(writer.drain())
    first_half, second_half = wire(messages[:20]), wire(messages[20:])
    assert await asyncio.wait_for(read_all(theirs, len(first_half)), 10) == first_half
    assert not drained.done()
    assert await asyncio.wait_for(read_all(theirs, len(second_half)), 10) == second_half
    await asyncio.wait_for(drained, 10)
    assert writer.pending() == 0


async def test_a_message_posted_after_the_bus_is_gone_is_dropped():
    ours, theirs = socket_pair()
    bus = StandInBus(ours)
    writer = FifoWriter(bus)
    bus._disconnected = True
    writer.post(small_signal(0))
    await next_loop_turn()
    assert writer.pending() == 0 and readable_now(theirs) == b"" and bus.finalized is None


async def test_a_lost_connection_fails_drain_and_every_waiting_message():
    ours, theirs = socket_pair()
    writer = FifoWriter(StandInBus(ours))
    for index in range(40):  # 2.5 MiB: the socket fills
        writer.post(signal_message(index))
    sent = asyncio.get_running_loop().create_future()
    writer.schedule_write(signal_message(40), sent)
    drained = asyncio.ensure_future(writer.drain())
    await next_loop_turn()
    assert writer.congested and not drained.done()
    writer.closed(ConnectionError("the bus closed the connection"))
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(drained, 10)
    assert isinstance(sent.exception(), ConnectionError)
    assert writer.pending() == 0 and not writer.congested
    # and it no longer waits for the socket to become writable
    assert not asyncio.get_running_loop().remove_writer(ours.fileno())
