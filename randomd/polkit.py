"""Asking polkit whether a caller may do something.

uid 0 is always allowed; everyone else is checked with CheckAuthorization on
subject ``system-bus-name`` (the caller's unique name).  polkit may ask for a
password only when the call carried ALLOW_INTERACTIVE_AUTHORIZATION.

A check never blocks the daemon: it is one outgoing call, awaited only by the
handler of the call it guards, and bounded in time.  A check that ends
without polkit's answer (its caller left the bus, the bound passed, the
daemon is stopping) is withdrawn with CancelCheckAuthorization, so that polkit
closes a password dialog it may have opened for it.  Nothing about polkitd is
remembered between checks (every call goes to the well-known name), so a
restarted polkitd serves the next check.

Checks are shared out fairly: a check keeps its place among randomd's
outgoing calls (dbus.MAX_PENDING_CALLS) until polkitd answers it, even after
its caller stopped waiting, so that randomd never has more calls awaiting a
reply than the bus allows; and each uid has at most CHECKS_PER_UID checks in
flight, its other calls waiting behind them, so that one user flooding
randomd with calls that need polkit cannot take every place from the others.

RANDOMD_POLKIT_TIMEOUT (seconds) replaces both bounds.  It is for the tests
only, which cannot wait for a hung authority as long as a person may take to
type a password; a deployment should never set it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from . import api, errors
from .callers import Caller, CallerRegistry
from .dbus import Bus, DBusError, Message, MessageFlag, Variant, call

log = logging.getLogger("randomd.polkit")

_AUTHORITY = dict(destination="org.freedesktop.PolicyKit1",
                  path="/org/freedesktop/PolicyKit1/Authority",
                  interface="org.freedesktop.PolicyKit1.Authority")
_ALLOW_USER_INTERACTION = 1
# A check that cannot prompt is answered in milliseconds; one that prompts
# waits for a person to type a password.
NONINTERACTIVE_TIMEOUT = 5.0
INTERACTIVE_TIMEOUT = 300.0
TIMEOUT_ENV = "RANDOMD_POLKIT_TIMEOUT"
# Checks of one uid on the wire at once (of dbus.MAX_PENDING_CALLS in all).
CHECKS_PER_UID = 8

# What the bus says when polkitd is not there, or left before answering.
_NOT_RUNNING = ("org.freedesktop.DBus.Error.ServiceUnknown",
                "org.freedesktop.DBus.Error.NameHasNoOwner")
_LEFT = (api.NO_REPLY_ERROR, api.DISCONNECTED_ERROR)


@dataclass(frozen=True)
class Timeouts:
    """How long a check may take before it is refused, in seconds."""

    noninteractive: float = NONINTERACTIVE_TIMEOUT
    interactive: float = INTERACTIVE_TIMEOUT

    @classmethod
    def from_environment(cls) -> Timeouts:
        """The defaults, or both set to RANDOMD_POLKIT_TIMEOUT (tests only)."""
        value = os.environ.get(TIMEOUT_ENV)
        if value is None:
            return cls()
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            log.warning("ignoring %s=%r: not a positive number of seconds", TIMEOUT_ENV, value)
            return cls()
        log.warning("polkit checks time out after %g s (%s is meant for tests only)",
                    seconds, TIMEOUT_ENV)
        return cls(seconds, seconds)


@dataclass(eq=False)
class _Pending:
    """One check awaiting polkit's answer."""

    cancellation_id: str
    # The check, which the library numbers as it sends it (0 while it waits its turn).
    message: Message
    # The round trip to polkitd, which runs until polkitd answers...
    task: asyncio.Task[list[Any]]
    # ...and what the caller's handler awaits, which may stop earlier.
    waiter: asyncio.Future[list[Any]]
    abandoned: bool = field(default=False)  # its caller left the bus

    @property
    def sent(self) -> bool:
        """Whether the check is on the wire (else it never reaches polkitd)."""
        return bool(self.message.serial)


@dataclass(eq=False)
class _Gate:
    """The checks of one uid: CHECKS_PER_UID at a time."""

    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CHECKS_PER_UID))
    users: int = 0


class Authority:
    """Authorizes calls for polkit actions."""

    def __init__(self, bus: Bus, callers: CallerRegistry,
                 timeouts: Timeouts | None = None) -> None:
        self._bus = bus
        self._callers = callers
        self._timeouts = timeouts or Timeouts.from_environment()
        self._ids = itertools.count(1)
        # Checks on the wire, by caller unique name and cancellation id.
        self._pending: dict[str, dict[str, _Pending]] = {}
        self._gates: dict[int, _Gate] = {}
        callers.on_gone(self._caller_gone)

    async def authorize(self, sender: str, action: str, *, interactive: bool) -> Caller:
        """Return the caller *sender* when it may do *action*; raise AccessDenied or
        InteractiveAuthorizationRequired otherwise.

        *interactive*: the call allows polkit to ask for a password
        (ALLOW_INTERACTIVE_AUTHORIZATION).
        """
        caller = await self._callers.lookup(sender)
        if caller.uid == 0:
            return caller
        if caller.gone:
            raise errors.AccessDenied(_abandoned(action))
        authorized, challenge = await self._check(caller, action, interactive)
        if authorized:
            return caller
        if challenge and not interactive:
            raise errors.InteractiveAuthorizationRequired(
                f"Authentication is required for {action}; allow interactive authorization.")
        raise errors.AccessDenied(f"Not authorized for {action}.")

    async def _check(self, caller: Caller, action: str,
                     interactive: bool) -> tuple[bool, bool]:
        """Ask polkit; return (authorized, challenge) or raise AccessDenied."""
        sender = caller.unique_name
        timeout = self._timeouts.interactive if interactive else self._timeouts.noninteractive
        cancellation_id = f"randomd-{next(self._ids)}"
        subject = ["system-bus-name", {"name": Variant("s", sender)}]
        flags = _ALLOW_USER_INTERACTION if interactive else 0
        message = Message(
            **_AUTHORITY, member="CheckAuthorization", signature="(sa{sv})sa{ss}us",
            body=[subject, action, {}, flags, cancellation_id])
        # The round trip in a task of its own that runs until polkitd answers;
        # the handler waits on a shield, which _caller_gone or the bound may stop.
        task = asyncio.ensure_future(self._round_trip(caller.uid, message))
        task.add_done_callback(_consume)
        pending = _Pending(cancellation_id, message, task, asyncio.shield(task))
        self._pending.setdefault(sender, {})[pending.cancellation_id] = pending
        answered = False
        try:
            async with asyncio.timeout(timeout):
                (result,) = await pending.waiter
            answered = True
        except asyncio.CancelledError:
            if pending.abandoned:
                log.debug("check of %s for %s withdrawn: the caller left", action, sender)
                raise errors.AccessDenied(_abandoned(action)) from None
            raise  # the daemon is stopping
        except DBusError as error:
            answered = error.type not in _LEFT
            raise _unavailable(action, error) from None
        except TimeoutError:
            log.warning("polkit did not answer the check of %s in %g s", action, timeout)
            raise errors.AccessDenied(f"Cannot check authorization for {action}: "
                                      f"polkit did not answer within {timeout:g} s.") from None
        finally:
            self._forget(sender, pending)
            if not answered:
                if pending.sent:
                    self._withdraw(pending.cancellation_id)
                else:  # still queued: it never reaches polkitd
                    pending.task.cancel()
        authorized, challenge, _details = result
        return bool(authorized), bool(challenge)

    async def _round_trip(self, uid: int, msg: Message) -> list[Any]:
        """Send one check when its uid and randomd have room; its reply body.

        Both places are held until polkitd answers (or the bus says it
        cannot): the bound on the wait is _check's, not this call's.
        """
        async with self._gate(uid):
            return await call(self._bus, msg, math.inf)

    @contextlib.asynccontextmanager
    async def _gate(self, uid: int) -> AsyncIterator[None]:
        gate = self._gates.get(uid)
        if gate is None:
            gate = self._gates[uid] = _Gate()
        gate.users += 1
        try:
            async with gate.slots:
                yield
        finally:
            gate.users -= 1
            if not gate.users:
                del self._gates[uid]

    def _caller_gone(self, unique_name: str) -> None:
        """Stop waiting for the checks of a caller that left; _check withdraws them."""
        for pending in list(self._pending.get(unique_name, {}).values()):
            pending.abandoned = True
            pending.waiter.cancel()

    def _forget(self, sender: str, pending: _Pending) -> None:
        checks = self._pending.get(sender, {})
        checks.pop(pending.cancellation_id, None)
        if not checks:
            self._pending.pop(sender, None)

    def _withdraw(self, cancellation_id: str) -> None:
        """Tell polkit to drop a check (and its password dialog); no answer wanted."""
        msg = Message(**_AUTHORITY, member="CancelCheckAuthorization", signature="s",
                      body=[cancellation_id], flags=MessageFlag.NO_REPLY_EXPECTED)
        try:
            sent = self._bus.send(msg)
        except Exception as error:  # the connection is going away: polkit drops it too
            log.debug("cannot withdraw polkit check %s: %s", cancellation_id, error)
            return
        if sent is not None:
            sent.add_done_callback(_consume)


def _consume(future: asyncio.Future) -> None:
    """Retrieve the failure of a send or of a check nobody waits for any more."""
    if not future.cancelled() and future.exception() is not None:
        log.debug("polkit call ended: %s", future.exception())


def _abandoned(action: str) -> str:
    return f"Authorization check for {action} abandoned: the caller left the bus."


def _unavailable(action: str, error: DBusError) -> errors.AccessDenied:
    """The refusal for a check that polkit could not answer."""
    log.warning("polkit check of %s failed: %s: %s", action, error.type, error.text)
    if error.type in _NOT_RUNNING:
        reason = "polkit is not running"
    elif error.type in _LEFT:
        reason = "polkit stopped before answering"
    else:
        reason = "polkit failed to check it; randomd's log has the details"
    return errors.AccessDenied(f"Cannot check authorization for {action}: {reason}.")
