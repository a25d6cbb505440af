"""A service on randomd's dispatch layer whose methods fail on purpose.

The error-mapping tests run it as a subprocess (on each bus library) because
randomd itself offers no way to make a handler raise a stray exception.
"""

import asyncio
import sys

from randomd import dbus, errors, logs
from randomd.dbus.interface import Call, Interface, method
from randomd.dbus.tree import ObjectTree

NAME = "org.randomd.Faulty"
PATH = "/org/randomd/Faulty"


class Faulty(Interface, name=NAME):
    def __init__(self, tree: ObjectTree) -> None:
        self._tree = tree

    @method("", "s", ("text",))
    def RaiseValueError(self, call: Call) -> str:
        raise ValueError("secret internals")

    @method("", "s", ("text",))
    async def RaiseInAsync(self, call: Call) -> str:
        await asyncio.sleep(0)
        raise KeyError("secret internals")

    @method("", "s", ("text",))
    async def CancelItself(self, call: Call) -> str:
        asyncio.current_task().cancel()
        await asyncio.sleep(0)
        return "not reached"

    @method("", "s", ("text",))
    def RaiseNamedError(self, call: Call) -> str:
        raise errors.InvalidArgument("That will not do.")

    @method("", "s", ("text",))
    def ReturnWrongType(self, call: Call) -> str:
        return 42

    @method("s", "s", ("echo",))
    def Echo(self, call: Call, text: str) -> str:
        return text

    @method("o")
    def AddChild(self, call: Call, path: str) -> None:
        self._tree.export(path, Faulty(self._tree))

    @method("o")
    def RemoveChild(self, call: Call, path: str) -> None:
        self._tree.unexport(path)


async def main() -> None:
    logs.setup("debug")
    connection = await dbus.connect(sys.argv[1])
    tree = ObjectTree(connection, PATH)
    tree.export(PATH, Faulty(tree))
    await connection.request_name(NAME)
    print("ready", flush=True)
    await connection.wait_for_disconnect()


asyncio.run(main())
