"""randomctl's connection to randomd: randomd.client, with randomctl's sentences and exit statuses.

Calls, their timeouts and the interactive-authorization flag, the mapping
of D-Bus errors and the following of jobs are randomd.client's (one
implementation for the library and the command).  This module only turns
the library's errors into a CtlError with randomctl's exit status and
wording, and offers the few calls the commands make.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import api
from ..client import _core, aio, errors
from ..dbus import MessageType, Variant
from . import exits
from .cli import DEFAULT_TIMEOUT

unwrap = _core.unwrap
_DEFAULT: Any = object()
_NOT_RUNNING = {"org.freedesktop.DBus.Error.ServiceUnknown",
                "org.freedesktop.DBus.Error.NameHasNoOwner"}

MessageHandler = Callable[[Any], Any]


def bus_label(bus: str, address: str | None) -> str:
    """'the system bus', 'the session bus' or 'the bus at ADDR'."""
    return f"the bus at {address}" if address else f"the {bus} bus"


class Client:
    """randomctl's side of one randomd.client connection."""

    def __init__(self, conn: _core.Connection, interactive: bool,
                 timeout: float | None) -> None:
        self.conn = conn
        self.bus = conn.bus
        self.label = conn.label
        self.interactive = interactive
        self.timeout = timeout  # None: not given on the command line
        # The unique name that answered as randomd (shown by status, checked by monitor).
        self.service: str | None = None
        # Why no polkit agent could ask for a password, when one was wanted.
        self.agent_problem: str | None = None

    @classmethod
    async def open(cls, bus: str, address: str | None, interactive: bool,
                   timeout: float | None) -> Client:
        """Connect to the system or session bus, or to *address*."""
        try:
            conn = await _core.Connection.open(bus, address, interactive,
                                               timeout or DEFAULT_TIMEOUT, aio.Job)
        except errors.Error as error:
            raise exits.CtlError(exits.UNAVAILABLE, str(error)) from None
        return cls(conn, interactive, timeout)

    async def close(self) -> None:
        """Leave the bus."""
        await self.conn.close()

    def failure(self, error: errors.Error, action: str | None = None,
                **details: object) -> exits.CtlError:
        """A library error as randomctl's CtlError: its exit status and one sentence."""
        name = error.dbus_name or None
        if isinstance(error, errors.NotAuthorized):
            if error.interactive_required:
                return exits.CtlError(exits.NOT_AUTHORIZED, f"Authentication is required for "
                                      f"{action or 'this'}; {self._password_hint()}.",
                                      name, action=action)
            text = str(error)
            message = text if action is None or action in text else (
                f"Not authorized for {action}: {text}")
            if self.agent_problem is not None:
                message = f"{message.rstrip('.')}; {self._password_hint()}."
            return exits.CtlError(exits.NOT_AUTHORIZED, message, name, action=action)
        if isinstance(error, errors.InvalidArgument):
            # The same status as when randomctl itself refuses a value.
            return exits.CtlError(exits.USAGE, str(error), name)
        if isinstance(error, errors.Unavailable) and name in _NOT_RUNNING:
            return exits.CtlError(exits.UNAVAILABLE, f"randomd is not running on {self.label}: "
                                  f"nobody owns {api.BUS_NAME}.", name)
        if isinstance(error, (errors.Unavailable, errors.JobLost, errors.Closed)):
            return exits.CtlError(exits.UNAVAILABLE, str(error), name, **details)
        return exits.CtlError(exits.FAILURE, str(error), name, **details)

    def _password_hint(self) -> str:
        """What to do when polkit wants a password randomctl could not ask for."""
        if self.agent_problem is not None:
            return f"no password could be asked ({self.agent_problem}): run randomctl as root"
        if not self.interactive:
            return ("run randomctl on a terminal without --no-ask-password or --json "
                    "to be asked for a password, or as root")
        return "run randomctl as root"

    async def run(self, awaitable: Any, action: str | None = None, **details: object) -> Any:
        """Await a call of the library; its errors as CtlError."""
        try:
            return await awaitable
        except errors.Error as error:
            raise self.failure(error, action, **details) from None

    # -- calls -----------------------------------------------------------

    async def call(self, path: str, interface: str, member: str, signature: str = "",
                   body: list[Any] | None = None, *, action: str | None = None,
                   timeout: Any = _DEFAULT, what: str | None = None) -> Any:
        """Call randomd and return the reply message.

        *action* is the polkit action the call may need: it is named in
        authorization errors and lets polkit ask for a password.  By default
        the call is bounded by --timeout (or the library's bounds).
        """
        if timeout is _DEFAULT:
            timeout = self.timeout if self.timeout is not None else _core._DEFAULT
        reply = await self.run(self.conn.call(path, interface, member, signature, body or [],
                                              action=action is not None, timeout=timeout,
                                              what=what), action)
        self.service = reply.sender
        return reply

    async def get_all(self, path: str, interface: str) -> dict[str, Any]:
        """Every property of *interface* at *path*, as plain values."""
        props, self.service = await self.run(self.conn.get_all(path, interface))
        return props

    async def set_property(self, path: str, interface: str, name: str, signature: str,
                           value: Any, action: str) -> None:
        """Write one property through org.freedesktop.DBus.Properties.Set."""
        await self.call(path, api.PROPERTIES_INTERFACE, "Set", "ssv",
                        [interface, name, Variant(signature, value)],
                        action=action, what=f"Set({name})")

    async def jobs(self) -> dict[str, dict[str, Any]]:
        """Every job randomd exports, by path."""
        return await self.run(self.conn.managed_jobs())

    async def name_owner(self) -> str:
        """randomd's unique name; CtlError(UNAVAILABLE) when it is not running."""
        (owner,) = await self.run(self.conn.bus_call("GetNameOwner", "s", [api.BUS_NAME]))
        self.service = owner
        return owner

    # -- broadcast signals (randomctl monitor) ---------------------------

    async def add_match(self, *rules: str) -> None:
        """Subscribe to broadcast signals matching each rule."""
        for rule in rules:
            await self.run(self.conn.bus_call("AddMatch", "s", [rule]))

    def add_handler(self, handler: MessageHandler) -> None:
        """Call *handler(message)* for every incoming message."""
        self.bus.add_message_handler(handler)

    def from_service(self, msg: Any) -> bool:
        """Whether *msg* is a signal sent by randomd (anyone may send signals)."""
        return (msg.message_type == MessageType.SIGNAL and self.service is not None
                and msg.sender == self.service)


def match_rule(**keys: str) -> str:
    """A match rule for signals from randomd."""
    return ",".join(["type='signal'", f"sender='{api.BUS_NAME}'",
                     *(f"{key}='{value}'" for key, value in keys.items())])
