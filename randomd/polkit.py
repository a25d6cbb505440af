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

RANDOMD_POLKIT_TIMEOUT (seconds) replaces both bounds.  It is for the tests
only, which cannot wait for a hung authority as long as a person may take to
type a password; a deployment should never set it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
from dataclasses import dataclass, field

from . import errors
from .bus import Bus, DBusError, Message, MessageFlag, Variant, call
from .callers import Caller, CallerRegistry
from .service import Call

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

# What the bus says when polkitd is not there, or left before answering.
_NOT_RUNNING = ("org.freedesktop.DBus.Error.ServiceUnknown",
                "org.freedesktop.DBus.Error.NameHasNoOwner")
_LEFT = ("org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Disconnected")


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
    task: asyncio.Task | None = None
    abandoned: bool = field(default=False)  # its caller left the bus


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
        callers.on_gone(self._caller_gone)

    async def authorize(self, call_: Call, action: str) -> Caller:
        """Return the caller when it may do *action*; raise AccessDenied or
        InteractiveAuthorizationRequired otherwise."""
        caller = await self._callers.lookup(call_.sender)
        if caller.uid == 0:
            return caller
        if caller.gone:
            raise errors.AccessDenied(_abandoned(action))
        authorized, challenge = await self._check(caller.unique_name, action, call_.interactive)
        if authorized:
            return caller
        if challenge and not call_.interactive:
            raise errors.InteractiveAuthorizationRequired(
                f"Authentication is required for {action}; allow interactive authorization.")
        raise errors.AccessDenied(f"Not authorized for {action}.")

    async def _check(self, sender: str, action: str, interactive: bool) -> tuple[bool, bool]:
        """Ask polkit; return (authorized, challenge) or raise AccessDenied."""
        timeout = self._timeouts.interactive if interactive else self._timeouts.noninteractive
        pending = _Pending(f"randomd-{next(self._ids)}")
        subject = ["system-bus-name", {"name": Variant("s", sender)}]
        flags = _ALLOW_USER_INTERACTION if interactive else 0
        msg = Message(**_AUTHORITY, member="CheckAuthorization", signature="(sa{sv})sa{ss}us",
                      body=[subject, action, {}, flags, pending.cancellation_id])
        # Its own task, so that _caller_gone can stop the wait for this check alone.
        pending.task = asyncio.ensure_future(call(self._bus, msg, timeout))
        self._pending.setdefault(sender, {})[pending.cancellation_id] = pending
        answered = False
        try:
            (result,) = await pending.task
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
                self._withdraw(pending.cancellation_id)
        authorized, challenge, _details = result
        return bool(authorized), bool(challenge)

    def _caller_gone(self, unique_name: str) -> None:
        """Stop waiting for the checks of a caller that left; _check withdraws them."""
        for pending in list(self._pending.get(unique_name, {}).values()):
            pending.abandoned = True
            pending.task.cancel()

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
    """Retrieve a send's failure: when the bus is gone there is nothing to withdraw."""
    if not future.cancelled() and future.exception() is not None:
        log.debug("cannot withdraw a polkit check: %s", future.exception())


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
