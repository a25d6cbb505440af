"""test_hostile's attackers: clients that try to starve randomd, as another user.

Usage: attacker.py ADDRESS MODE ARGS..., run as randomd-test:

- stops-reading SLOW_CALLS BYTES_CALLS: starts jobs up to its quota, then
  sends more calls and reads nothing;
- connections COUNT: opens COUNT connections, each asking for a job;
- flood CONNECTIONS IN_FLIGHT SECONDS: calls Slow as fast as randomd answers;
- big COUNT MIB: sends COUNT calls of MIB MiB that are costly to unmarshal.

Each prints what it did as JSON lines, then keeps its connections open until
its stdin closes (the test's Attacker.leave).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import selectors
import socket
import struct
import sys
import time

from randomd import api, dbus
from randomd.dbus import Message, MessageType

TIMEOUT = 10.0  # seconds, as harness.TIMEOUT: the bound on each step


class RawConnection:
    """A bus connection by hand on an AF_UNIX socket: EXTERNAL auth, Hello, and no reader.

    start() sends the whole handshake at once; finish() reads until the bus
    answered Hello, and raises ConnectionRefusedError if it does not.
    """

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(address.removeprefix("unix:path="))
        self._serial = 0
        self.unique_name = ""

    @classmethod
    def open(cls, address: str, timeout: float = TIMEOUT) -> RawConnection:
        connection = cls(address)
        connection.start()
        connection.finish(timeout)
        return connection

    def start(self) -> None:
        uid = str(os.getuid()).encode().hex().encode()
        # The bus accepts the whole handshake at once (the client is not
        # obliged to wait for OK before BEGIN when it sends nothing else).
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\nBEGIN\r\n")
        self.send(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                          interface="org.freedesktop.DBus", member="Hello"))

    def finish(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        data = b""
        try:
            while b"NameAcquired" not in data:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionRefusedError("the bus closed the connection")
                data += chunk
        except (TimeoutError, ConnectionResetError) as error:
            raise ConnectionRefusedError(f"no answer to Hello: {error!r}") from None
        finally:
            self.sock.settimeout(TIMEOUT)
        if not data.startswith(b"OK "):
            raise ConnectionRefusedError("EXTERNAL authentication refused")
        self.unique_name = re.search(rb":\d+\.\d+", data).group().decode()

    def send(self, msg: Message) -> None:
        self._serial += 1
        msg.serial = self._serial
        self.sock.sendall(msg._marshall(False))

    def call(self, member: str, signature: str = "", body=(), **fields) -> None:
        """Send a call to randomd; its reply is never read."""
        where = dict(destination=api.BUS_NAME, path=api.MANAGER_PATH,
                     interface=api.MANAGER_INTERFACE) | fields
        self.send(Message(**where, member=member, signature=signature, body=list(body)))

    def next_reply(self) -> tuple[int, bytes]:
        """The type and the rest of the next method return or error; signals are skipped."""
        while True:
            head = self._read(16)
            order = "<" if head[:1] == b"l" else ">"
            body_length, _, fields_length = struct.unpack_from(order + "III", head, 4)
            rest = self._read(-(-fields_length // 8) * 8 + body_length)
            if head[1] in (MessageType.METHOD_RETURN.value, MessageType.ERROR.value):
                return head[1], rest

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise SystemExit("the bus closed the connection")
            data += chunk
        return data

    def start_jobs(self) -> int:
        """Call Slow and read each answer until randomd says QuotaExceeded; the jobs started."""
        jobs = 0
        for _ in range(1000):
            self.call("Slow", "u", [256])
            kind, rest = self.next_reply()
            if kind == MessageType.METHOD_RETURN.value:
                jobs += 1
            elif b".QuotaExceeded\0" in rest:
                return jobs
            elif b"polkit did not answer" not in rest:  # else: try again
                raise SystemExit(f"unexpected answer to Slow: {rest!r}")
        raise SystemExit(f"no QuotaExceeded after {jobs} jobs")

    def close(self) -> None:
        self.sock.close()


def _say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def _hold() -> None:
    """Keep everything open until the test closes our stdin."""
    sys.stdin.read()


def stops_reading(address: str, slow_calls: str, bytes_calls: str) -> None:
    """Start jobs up to the quota, then ask for more and for 64 KiB replies, reading nothing.

    The jobs are started one call at a time, each answer read: how many of a
    burst of Slow calls polkit authorizes within randomd's bound on checks
    depends on how loaded the machine is, and this attack is not about polkit.
    """
    connection = RawConnection.open(address)
    jobs = connection.start_jobs()
    for _ in range(int(slow_calls)):
        connection.call("Slow", "u", [256])
    for _ in range(int(bytes_calls)):
        connection.call("Bytes", "u", [65536])
    _say(jobs=jobs, unread=int(slow_calls) + int(bytes_calls))
    _hold()


def many_connections(address: str, count: str) -> None:
    """Open *count* connections; each asks for a Quick number and a job, reads nothing.

    One by one until the bus refuses one (dbus-daemon allows a uid 256; a
    refused connection hears nothing until auth_timeout), then the rest all at
    once, waiting a moment for their answers.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    connected, refused = [], []
    remaining = int(count)
    while remaining and not refused:
        remaining -= 1
        try:
            connected.append(RawConnection.open(address, timeout=2))
        except ConnectionRefusedError:
            refused.append(None)
    pending = [RawConnection(address) for _ in range(remaining)]
    for connection in pending:
        connection.start()
    answered = _answered(pending, timeout=1.0)
    for connection in pending:
        if connection in answered:
            connected.append(connection)
        else:
            connection.close()
            refused.append(None)
    for connection in connected:
        connection.call("Quick", "u", [8])
        connection.call("Slow", "u", [256])
    _say(connected=len(connected), refused=len(refused))
    _hold()


def _answered(connections: list[RawConnection], timeout: float) -> set[RawConnection]:
    """The connections whose Hello the bus answers within *timeout*, all waited for at once."""
    answered: set[RawConnection] = set()
    data = {connection: b"" for connection in connections}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for connection in connections:
            selector.register(connection.sock, selectors.EVENT_READ, connection)
        while selector.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                connection = key.data
                try:
                    chunk = connection.sock.recv(4096)
                except OSError:
                    chunk = b""
                data[connection] += chunk
                if b"NameAcquired" in data[connection]:
                    answered.add(connection)
                if not chunk or connection in answered:
                    selector.unregister(connection.sock)
    return answered


async def _flood(address: str, connections: str, in_flight: str, seconds: str) -> None:
    """Call Slow as fast as randomd answers, from many connections at once."""
    buses = [await dbus.connect(address) for _ in range(int(connections))]
    counts: dict = {}
    deadline = time.monotonic() + float(seconds)

    async def worker(bus) -> None:
        while time.monotonic() < deadline:
            reply = await bus.call(Message(destination=api.BUS_NAME, path=api.MANAGER_PATH,
                                           interface=api.MANAGER_INTERFACE, member="Slow",
                                           signature="u", body=[256]))
            if reply.message_type != MessageType.ERROR:
                counts["ok"] = counts.get("ok", 0) + 1
            elif reply.error_name == "org.freedesktop.DBus.Error.AccessDenied":
                texts = counts.setdefault(reply.error_name, [])
                if reply.body[0] not in texts:
                    texts.append(reply.body[0])
            else:
                counts[reply.error_name] = counts.get(reply.error_name, 0) + 1

    await asyncio.gather(*(worker(bus) for bus in buses for _ in range(int(in_flight))))
    _say(**counts)
    await asyncio.to_thread(_hold)


def big_messages(address: str, count: str, mib: str) -> None:
    """Send *count* Quick calls of *mib* MiB of integers, one after the other's answer."""
    connection = RawConnection.open(address)
    connection.sock.settimeout(120)
    for _ in range(int(count)):
        started = time.monotonic()
        connection.call("Quick", "uau", [8, [7] * (int(mib) * 1024 * 1024 // 4)])
        data = b""
        while not (found := re.search(rb"org\.freedesktop\.DBus\.Error\.\w+\x00", data)):
            chunk = connection.sock.recv(65536)
            if not chunk:
                raise SystemExit("the bus closed the connection")
            data += chunk
        _say(error=found.group()[:-1].decode(), seconds=time.monotonic() - started)
    _hold()


if __name__ == "__main__":
    bus_address, mode, *arguments = sys.argv[1:]
    if mode == "stops-reading":
        stops_reading(bus_address, *arguments)
    elif mode == "connections":
        many_connections(bus_address, *arguments)
    elif mode == "flood":
        asyncio.run(_flood(bus_address, *arguments))
    elif mode == "big":
        big_messages(bus_address, *arguments)
    else:
        raise SystemExit(f"unknown mode {mode}")
