"""Who is calling: the uid behind a unique bus name, and when that name leaves.

The uid comes from the bus (GetConnectionUnixUser), is cached per unique name
and forgotten when the name leaves the bus (NameOwnerChanged).  A unique name
is never reused, so a cached uid cannot go stale while the name exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from . import api, errors
from .dbus import Bus, DBusError, Message, MessageType, call

log = logging.getLogger("randomd.callers")

# Only departures matter: a new owner of "" means the name left the bus.
_DEPARTURES = api.name_owner_changed_rule(arg2="")
LOOKUP_TIMEOUT = 10.0


@dataclass
class Caller:
    """A client connection: its unique name and uid; ``gone`` once it left."""

    unique_name: str
    uid: int
    gone: bool = field(default=False)


class CallerRegistry:
    """Caches callers by unique name and tells listeners when one leaves."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._callers: dict[str, asyncio.Future[Caller]] = {}
        self._listeners: list[Callable[[str], None]] = []
        bus.add_message_handler(self._on_message)

    async def start(self) -> None:
        """Subscribe to departures; call once after connecting."""
        await call(self._bus, Message(**api.BUS_DAEMON, member="AddMatch", signature="s",
                                      body=[_DEPARTURES]), LOOKUP_TIMEOUT)

    def on_gone(self, listener: Callable[[str], None]) -> None:
        """Call *listener(unique_name)* whenever a bus name leaves."""
        self._listeners.append(listener)

    async def lookup(self, unique_name: str) -> Caller:
        """The caller behind *unique_name*; asks the bus once per name."""
        future = self._callers.get(unique_name)
        if future is None:
            future = asyncio.ensure_future(self._ask_uid(unique_name))
            self._callers[unique_name] = future
            future.add_done_callback(partial(self._forget_failed, unique_name))
        elif future.done():  # the usual case, without a task step
            return future.result()
        return await asyncio.shield(future)

    async def _ask_uid(self, unique_name: str) -> Caller:
        msg = Message(**api.BUS_DAEMON, member="GetConnectionUnixUser", signature="s",
                      body=[unique_name])
        try:
            (uid,) = await call(self._bus, msg, LOOKUP_TIMEOUT)
        except DBusError as error:
            raise errors.Failed(f"Cannot tell who {unique_name} is: {error.text}") from None
        except TimeoutError:
            raise errors.Failed(f"The bus did not say who {unique_name} is in time.") from None
        return Caller(unique_name, uid)

    def _forget_failed(self, unique_name: str, future: asyncio.Future[Caller]) -> None:
        """A lookup failed: ask the bus again next time."""
        if future.exception():
            self._forget(unique_name)

    def _forget(self, unique_name: str) -> None:
        future = self._callers.pop(unique_name, None)
        if future is not None and future.done() and not future.exception():
            future.result().gone = True

    def _on_message(self, msg: Any) -> bool:
        if (msg.message_type == MessageType.SIGNAL and msg.member == "NameOwnerChanged"
                and msg.sender == api.BUS_DAEMON_NAME and msg.signature == "sss"
                and not msg.body[2]):
            name = msg.body[0]
            if name.startswith(":"):
                self._depart(name)
        return False

    def _depart(self, name: str) -> None:
        future = self._callers.get(name)
        if future is not None and not future.done():
            # The lookup is in flight: mark its result gone when it lands.
            future.add_done_callback(_mark_gone)
        self._forget(name)
        for listener in self._listeners:
            try:
                listener(name)
            except Exception:
                log.exception("a listener failed on the departure of %s", name)


def _mark_gone(future: asyncio.Future[Caller]) -> None:
    """A lookup of a name that left meanwhile: its caller is gone."""
    if not future.exception():
        future.result().gone = True
