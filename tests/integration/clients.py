"""Small client helpers for the integration tests (root, in-process)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from randomd import api
from randomd.dbus import Bus, DBusError, Message, MessageType, Variant

TIMEOUT = 10.0


async def call(bus: Bus, member: str, signature: str = "", body: list[Any] | None = None,
               path: str = api.MANAGER_PATH, interface: str | None = api.MANAGER_INTERFACE,
               flags: int = 0) -> list[Any]:
    """Call randomd and return the reply body; raise DBusError on an error reply."""
    msg = Message(destination=api.BUS_NAME, path=path, interface=interface, member=member,
                  signature=signature, body=body or [], flags=flags)
    reply = await asyncio.wait_for(bus.call(msg), TIMEOUT)
    if reply.message_type == MessageType.ERROR:
        raise DBusError(reply.error_name, reply.body[0] if reply.body else "", reply)
    return reply.body


async def get_property(bus: Bus, name: str, interface: str = api.MANAGER_INTERFACE,
                       path: str = api.MANAGER_PATH) -> Any:
    (variant,) = await call(bus, "Get", "ss", [interface, name], path=path,
                            interface="org.freedesktop.DBus.Properties")
    return variant.value


async def set_property(bus: Bus, name: str, signature: str, value: Any,
                       interface: str = api.MANAGER_INTERFACE,
                       path: str = api.MANAGER_PATH) -> None:
    await call(bus, "Set", "ssv", [interface, name, Variant(signature, value)], path=path,
               interface="org.freedesktop.DBus.Properties")


async def error_of(awaitable) -> DBusError:
    """The DBusError *awaitable* raises (fails the test if it succeeds)."""
    try:
        result = await awaitable
    except DBusError as error:
        return error
    raise AssertionError(f"expected a D-Bus error, got {result!r}")


class SignalRecorder:
    """Collects the signals a connection receives; waits for one that matches."""

    def __init__(self, bus: Bus) -> None:
        self.signals: list[Any] = []
        self._changed = asyncio.Event()
        bus.add_message_handler(self._on_message)

    def _on_message(self, msg: Any) -> bool:
        if msg.message_type == MessageType.SIGNAL:
            self.signals.append(msg)
            self._changed.set()
        return False

    async def wait_for(self, predicate, timeout: float = TIMEOUT) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for msg in self.signals:
                    if predicate(msg):
                        return msg
                self._changed.clear()
                await self._changed.wait()


async def wait_until(condition, what: str, timeout: float = TIMEOUT,
                     interval: float = 0.05) -> None:
    """Poll an async *condition* until it holds; fail after *timeout* seconds.

    For states randomd announces with no signal (its table, its memory).
    """
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def add_match(bus: Bus, rule: str) -> None:
    await asyncio.wait_for(bus.call(Message(
        destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[rule])),
        TIMEOUT)
