"""test_secrets' bystander: another uid listening to every signal on the bus.

Usage: signal_listener.py ADDRESS, run as randomd-test.  It adds broad match
rules and an eavesdropping one, prints which the bus accepted as one JSON
object, then one JSON line per signal it receives, and exits once randomd
has announced SlowBitInterval twice (the test's end marker).
"""

import asyncio
import json
import sys

from randomd import api, dbus


async def listen(address: str) -> None:
    bus = await dbus.connect(address)
    rules = ["type='signal'", "type='signal',eavesdrop='true'",
             f"type='signal',sender='{api.BUS_NAME}'"]
    accepted = []
    for rule in rules:
        reply = await bus.call(dbus.Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[rule]))
        accepted.append(reply.message_type != dbus.MessageType.ERROR)
    print(json.dumps(dict(zip(rules, accepted, strict=True))), flush=True)
    done = asyncio.Event()
    changes = 0

    def on_message(msg) -> bool:
        nonlocal changes
        if msg.message_type != dbus.MessageType.SIGNAL:
            return False
        print(json.dumps({"member": msg.member, "path": msg.path, "sender": msg.sender,
                          "destination": msg.destination, "body": repr(msg.body)}), flush=True)
        if (msg.member == "PropertiesChanged" and msg.path == api.MANAGER_PATH
                and "SlowBitInterval" in msg.body[1]):
            changes += 1
            if changes == 2:
                done.set()
        return False

    bus.add_message_handler(on_message)
    await asyncio.wait_for(done.wait(), 60)
    bus.disconnect()


asyncio.run(listen(sys.argv[1]))
