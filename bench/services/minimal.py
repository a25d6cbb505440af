"""A minimal service on one bus library: what the library costs without randomd.

    minimal.py dbus_fast|dbus_next ADDRESS BIT_INTERVAL_S

The library's own ServiceInterface with @method Quick(u) -> s and
Slow(u) -> o; a slow job is an asyncio task that draws one bit per interval
and then sends Finished(sss) from the job's path, unicast to its caller.  The
libraries hide the incoming message from methods, so a message handler keeps
the current one (the only way to learn the caller).
"""

import asyncio
import contextlib
import importlib
import secrets
import sys

library, address, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
lib = importlib.import_module(library)
aio = importlib.import_module(library + ".aio")
service = importlib.import_module(library + ".service")
Message, MessageType, MessageFlag = lib.Message, lib.MessageType, lib.MessageFlag
method = service.method
_source = secrets.SystemRandom()
_current = [None]


def remember(msg):
    _current[0] = msg  # returns None: the library dispatches it as usual


class Random(service.ServiceInterface):
    def __init__(self, bus):
        super().__init__("org.randomd.Random1")
        self.bus = bus
        self.last_id = 0
        self.tasks = set()

    @method()
    def Quick(self, bits: "u") -> "s":
        return str(_source.getrandbits(bits))

    @method()
    def Slow(self, bits: "u") -> "o":
        self.last_id += 1
        path = f"/org/randomd/Random1/jobs/{self.last_id}"
        task = asyncio.get_running_loop().create_task(self.run(path, bits, _current[0].sender))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return path

    async def run(self, path, bits, owner):
        number = 0
        for _ in range(bits):
            await asyncio.sleep(interval)
            number = number << 1 | _source.getrandbits(1)
        self.bus.send(Message(message_type=MessageType.SIGNAL, path=path,
                              interface="org.randomd.Random1.Job", member="Finished",
                              signature="sss", body=["completed", str(number), ""],
                              destination=owner, flags=MessageFlag.NO_REPLY_EXPECTED))


async def main():
    bus = await aio.MessageBus(bus_address=address).connect()
    bus.add_message_handler(remember)
    bus.export("/org/randomd/Random1", Random(bus))
    await bus.request_name("org.randomd.Random1")
    await bus.wait_for_disconnect()


with contextlib.suppress(KeyboardInterrupt):
    asyncio.run(main())
