"""randomctl's connection to randomd: calls with timeouts, properties, signals.

Everything randomctl sends goes through Client.call, which adds the
interactive-authorization flag when asked to, bounds the wait with an
asyncio timeout (the bus libraries have none) and turns every D-Bus or
connection failure into a CtlError with its exit status.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from .. import api
from ..bus import Bus, DBusError, Message, MessageFlag, MessageType, Variant, connect
from . import exits
from .cli import DEFAULT_TIMEOUT

PROPERTIES = "org.freedesktop.DBus.Properties"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
_DBUS = dict(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
             interface="org.freedesktop.DBus")
_STANDARD = "org.freedesktop.DBus.Error."
# A password typed at a polkit prompt may take a while.
INTERACTIVE_TIMEOUT = 300.0
_DEFAULT = object()

_NOT_AUTHORIZED = {_STANDARD + "AccessDenied", _STANDARD + "InteractiveAuthorizationRequired"}
_UNAVAILABLE = {_STANDARD + name for name in (
    "ServiceUnknown", "NameHasNoOwner", "NoReply", "Disconnected", "NoServer", "TimedOut")}
_NOT_RUNNING = {_STANDARD + "ServiceUnknown", _STANDARD + "NameHasNoOwner"}

MessageHandler = Callable[[Any], Any]


def bus_label(bus: str, address: str | None) -> str:
    """'the system bus', 'the session bus' or 'the bus at ADDR'."""
    return f"the bus at {address}" if address else f"the {bus} bus"


class Client:
    """A connection to the bus randomd is on."""

    def __init__(self, bus: Bus, label: str, interactive: bool, timeout: float | None) -> None:
        self.bus = bus
        self.label = label
        self.interactive = interactive
        self.timeout = timeout  # None: not given on the command line
        # The unique name that answered as randomd, to check signals' senders.
        self.service: str | None = None
        # Why no polkit agent could ask for a password, when one was wanted.
        self.agent_problem: str | None = None

    @classmethod
    async def open(cls, bus: str, address: str | None, interactive: bool,
                   timeout: float | None) -> Client:
        """Connect to the system or session bus, or to *address*."""
        label = bus_label(bus, address)
        try:
            async with asyncio.timeout(timeout or DEFAULT_TIMEOUT):
                connection = await connect(address, system=bus != "session")
        except TimeoutError:
            raise exits.CtlError(exits.UNAVAILABLE,
                                 f"Cannot connect to {label}: it did not answer.") from None
        except Exception as error:  # no socket, refused, bad address, authentication
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise exits.CtlError(exits.UNAVAILABLE,
                                 f"Cannot connect to {label}: {reason}.") from None
        return cls(connection, label, interactive, timeout)

    def close(self) -> None:
        """Leave the bus."""
        self.bus.disconnect()

    # -- calls -----------------------------------------------------------

    async def call(self, path: str, interface: str, member: str, signature: str = "",
                   body: list[Any] | None = None, *, action: str | None = None,
                   timeout: Any = _DEFAULT, what: str | None = None) -> Any:
        """Call randomd and return the reply message.

        *action* is the polkit action the call may need: it is named in
        authorization errors and allows a longer wait for a password.
        *timeout* None waits as long as it takes; by default the call is
        bounded by --timeout (or 25 s).  *what* describes the call for
        errors (default: the member's name).
        """
        interactive = self.interactive and action is not None
        flags = MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if interactive else MessageFlag.NONE
        msg = Message(destination=api.BUS_NAME, path=path, interface=interface, member=member,
                      signature=signature, body=body or [], flags=flags)
        if timeout is _DEFAULT:
            timeout = self.timeout or (INTERACTIVE_TIMEOUT if interactive else DEFAULT_TIMEOUT)
        reply = await self._send(msg, timeout, what or member)
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise self.translate(reply.error_name or "", text, action)
        self.service = reply.sender
        return reply

    async def call_bus(self, member: str, signature: str = "", body: list[Any] | None = None
                       ) -> list[Any]:
        """Call the bus itself (org.freedesktop.DBus) and return the reply body."""
        msg = Message(**_DBUS, member=member, signature=signature, body=body or [])
        reply = await self._send(msg, self.timeout or DEFAULT_TIMEOUT, member)
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise self.translate(reply.error_name or "", text, None)
        return reply.body

    async def _send(self, msg: Any, timeout: float | None, what: str) -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await self.bus.call(msg)
        except TimeoutError:
            raise exits.CtlError(exits.FAILURE, f"randomd did not answer {what} within "
                                 f"{timeout:g} s.", timeout=timeout) from None
        except DBusError as error:  # the library's own checks, e.g. a bad signature
            raise exits.CtlError(exits.FAILURE, f"Cannot call {what}: {error.text}") from None
        except (OSError, EOFError) as error:
            raise exits.CtlError(exits.UNAVAILABLE,
                                 f"Lost the connection to {self.label}: {error}.") from None

    def translate(self, name: str, text: str, action: str | None) -> exits.CtlError:
        """A D-Bus error reply as a CtlError with its exit status and one sentence."""
        text = text.strip() or name
        if name == _STANDARD + "InteractiveAuthorizationRequired":
            return exits.CtlError(exits.NOT_AUTHORIZED, f"Authentication is required for "
                                  f"{action or 'this'}; {self._password_hint()}.",
                                  name, action=action)
        if name in _NOT_AUTHORIZED:
            message = text if action is None or action in text else (
                f"Not authorized for {action}: {text}")
            if self.agent_problem is not None:
                message = f"{message.rstrip('.')}; {self._password_hint()}."
            return exits.CtlError(exits.NOT_AUTHORIZED, message, name, action=action)
        if name == api.ERROR_PREFIX + "InvalidArgument":
            # The same status as when randomctl itself refuses a value.
            return exits.CtlError(exits.USAGE, text, name)
        if name in _NOT_RUNNING:
            return exits.CtlError(exits.UNAVAILABLE, f"randomd is not running on {self.label}: "
                                  f"nobody owns {api.BUS_NAME}.", name)
        if name in _UNAVAILABLE or name.startswith(_STANDARD + "Spawn."):
            return exits.CtlError(exits.UNAVAILABLE,
                                  f"randomd is unavailable on {self.label}: {text}", name)
        return exits.CtlError(exits.FAILURE, text, name)

    def _password_hint(self) -> str:
        """What to do when polkit wants a password randomctl could not ask for."""
        if self.agent_problem is not None:
            return f"no password could be asked ({self.agent_problem}): run randomctl as root"
        if not self.interactive:
            return ("run randomctl on a terminal without --no-ask-password or --json "
                    "to be asked for a password, or as root")
        return "run randomctl as root"

    # -- properties and objects ----------------------------------------

    async def get_all(self, path: str, interface: str) -> dict[str, Any]:
        """Every property of *interface* at *path*, as plain values."""
        reply = await self.call(path, PROPERTIES, "GetAll", "s", [interface],
                                what=f"GetAll({interface})")
        return unwrap(reply.body[0])

    async def set_property(self, path: str, interface: str, name: str, signature: str,
                           value: Any, action: str) -> None:
        """Write one property through org.freedesktop.DBus.Properties.Set."""
        await self.call(path, PROPERTIES, "Set", "ssv", [interface, name, Variant(signature, value)],
                        action=action, what=f"Set({name})")

    async def jobs(self) -> dict[str, dict[str, Any]]:
        """Every job randomd exports, by path, from GetManagedObjects."""
        reply = await self.call(api.MANAGER_PATH, OBJECT_MANAGER, "GetManagedObjects")
        return {path: unwrap(interfaces[api.JOB_INTERFACE])
                for path, interfaces in reply.body[0].items() if api.JOB_INTERFACE in interfaces}

    async def name_owner(self) -> str:
        """randomd's unique name; CtlError(UNAVAILABLE) when it is not running."""
        (owner,) = await self.call_bus("GetNameOwner", "s", [api.BUS_NAME])
        self.service = owner
        return owner

    # -- signals ---------------------------------------------------------

    async def add_match(self, *rules: str) -> None:
        """Subscribe to broadcast signals matching each rule."""
        await asyncio.gather(*(self.call_bus("AddMatch", "s", [rule]) for rule in rules))

    def add_handler(self, handler: MessageHandler) -> None:
        """Call *handler(message)* for every incoming message."""
        self.bus.add_message_handler(handler)

    def from_service(self, msg: Any) -> bool:
        """Whether *msg* is a signal sent by randomd (anyone may send signals)."""
        return (msg.message_type == MessageType.SIGNAL and self.service is not None
                and msg.sender == self.service)


def unwrap(value: Any) -> Any:
    """Variants, dicts and lists of them as plain Python values."""
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def match_rule(**keys: str) -> str:
    """A match rule for signals from randomd."""
    return ",".join(["type='signal'", f"sender='{api.BUS_NAME}'",
                     *(f"{key}='{value}'" for key, value in keys.items())])
