"""The other side of polkit_harness.UserClient: one bus connection of another user.

Usage: user_client.py ADDRESS, run as that user.  It connects, prints its
unique name and pid as JSON, then reads one JSON call per line on stdin
({"id", "member", "signature", "body", "interactive", "path", "interface",
"variant"}), sends each to randomd at once (a call need not wait for the one
before) and prints each reply as a JSON line with its id: its body, or its
error name and text.  It disconnects at EOF.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from randomd import api, dbus

# Not a D-Bus error: what is reported when the call could not be made at all
# (polkit_harness.CLIENT_FAILED).
CLIENT_FAILED = "test.ClientFailed"


async def main(address: str) -> None:
    bus = await dbus.connect(address)
    print(json.dumps({"unique_name": bus.unique_name, "pid": os.getpid()}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    calls: set[asyncio.Task] = set()
    while line := await reader.readline():
        task = asyncio.ensure_future(_client_call(bus, json.loads(line)))
        calls.add(task)
        task.add_done_callback(calls.discard)
    bus.disconnect()


async def _client_call(bus: dbus.Bus, request: dict[str, Any]) -> None:
    body = request["body"]
    if request["variant"]:
        body[-1] = dbus.Variant(request["variant"], body[-1])
    flags = (dbus.MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if request["interactive"]
             else dbus.MessageFlag.NONE)
    msg = dbus.Message(destination=api.BUS_NAME, path=request["path"],
                       interface=request["interface"], member=request["member"],
                       signature=request["signature"], body=body, flags=flags)
    answer: dict[str, Any] = {"id": request["id"]}
    try:
        reply = await bus.call(msg)
    except Exception as error:  # report it: the test must not wait for a reply in vain
        answer.update(error=CLIENT_FAILED, text=repr(error))
    else:
        if reply.message_type == dbus.MessageType.ERROR:
            answer.update(error=reply.error_name, text=reply.body[0] if reply.body else "")
        else:
            answer.update(body=reply.body)
    print(json.dumps(answer, default=_jsonable), flush=True)


def _jsonable(value: Any) -> Any:
    """Variants as their value, byte arrays as lists of integers."""
    return list(value) if isinstance(value, (bytes, bytearray)) else value.value


asyncio.run(main(sys.argv[1]))
