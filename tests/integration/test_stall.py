"""A stalled bus (dbus-daemon stopped) must not kill randomd nor lose or reorder a message.

Both libraries drop the connection when a send gets EAGAIN, and Debian's
dbus-fast sends queued messages in reverse order (BUS-LIBRARIES.md).
"""

from __future__ import annotations

import asyncio
import signal

import harness
from clients import call

from randomd import api, dbus
from randomd.dbus import Message, MessageType

# 120 replies of 64 KiB: far more than a socket buffer holds, and below the
# bus's limit of 128 calls awaiting a reply per connection.
CALLS = 120
DBUS = dict(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus")


async def bus_call(bus, interface: str, member: str, signature: str = "", body=None):
    reply = await asyncio.wait_for(bus.call(Message(**DBUS, interface=interface, member=member,
                                                    signature=signature, body=body or [])), 10)
    return reply.body


async def wait_until_delivered(bus, name: str) -> None:
    """Return once dbus-daemon has written every queued message into *name*'s socket."""
    # The bus handles a connection's messages in order: once it answers this,
    # it has read our calls.
    await bus_call(bus, "org.freedesktop.DBus", "GetId")
    async with asyncio.timeout(harness.TIMEOUT):
        while True:
            (stats,) = await bus_call(bus, "org.freedesktop.DBus.Debug.Stats",
                                      "GetConnectionStats", "s", [name])
            if stats["OutgoingMessages"].value == 0:
                return
            await bus_call(bus, "org.freedesktop.DBus", "GetId")


async def test_a_stalled_bus_loses_no_reply_and_keeps_their_order(start_randomd):
    daemon = start_randomd('LogLevel = "debug"\n').wait_ready()
    client = await dbus.connect(daemon.bus.address)
    (owner,) = await bus_call(client, "org.freedesktop.DBus", "GetNameOwner", "s", [api.BUS_NAME])
    arrivals: list[int] = []
    client.add_message_handler(lambda m: m.message_type == MessageType.METHOD_RETURN
                               and m.sender == owner and arrivals.append(m.reply_serial))

    daemon.process.send_signal(signal.SIGSTOP)  # randomd holds the calls unread...
    calls = [asyncio.ensure_future(call(client, "Bytes", "u", [65536])) for _ in range(CALLS)]
    await wait_until_delivered(client, owner)
    daemon.bus.pause()  # ...until the bus cannot read the replies
    daemon.process.send_signal(signal.SIGCONT)
    harness.wait_for(lambda: "the bus is not reading" in daemon.stderr(),
                     what="randomd to find its socket full")
    daemon.bus.resume()

    replies = await asyncio.wait_for(asyncio.gather(*calls), 60)
    assert all(len(data) == 65536 for (data,) in replies)
    assert len(arrivals) == CALLS and arrivals == sorted(arrivals)
    assert await call(client, "Quick", "u", [8])
    assert daemon.process.poll() is None
    client.disconnect()


async def test_a_bus_that_dies_while_randomd_stops_behind_a_stall_ends_it_at_once(start_randomd):
    """SIGTERM while replies wait for a stalled bus, then the bus is killed: exit 1, no hang."""
    daemon = start_randomd('LogLevel = "debug"\n').wait_ready()
    client = await dbus.connect(daemon.bus.address)
    (owner,) = await bus_call(client, "org.freedesktop.DBus", "GetNameOwner", "s", [api.BUS_NAME])
    daemon.process.send_signal(signal.SIGSTOP)
    calls = [asyncio.ensure_future(call(client, "Bytes", "u", [65536])) for _ in range(CALLS)]
    await wait_until_delivered(client, owner)
    daemon.bus.pause()
    daemon.process.send_signal(signal.SIGCONT)
    harness.wait_for(lambda: "the bus is not reading" in daemon.stderr(),
                     what="randomd to find its socket full")
    daemon.process.send_signal(signal.SIGTERM)
    harness.wait_for(lambda: "shutting down" in daemon.stderr(), what="randomd to start stopping")
    daemon.bus.process.kill()
    assert daemon.process.wait(harness.TIMEOUT) == 1
    assert "lost the connection to the bus while stopping" in daemon.stderr()
    for pending in calls:
        pending.cancel()
    await asyncio.gather(*calls, client.wait_for_disconnect(), return_exceptions=True)
