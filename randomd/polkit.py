"""Asking polkit whether a caller may do something.

uid 0 is always allowed; everyone else is checked with CheckAuthorization on
subject ``system-bus-name`` (the caller's unique name).  polkit may ask for a
password only when the call carried ALLOW_INTERACTIVE_AUTHORIZATION.
"""

from __future__ import annotations

import itertools
import logging

from . import errors
from .bus import Bus, DBusError, Message, Variant, call
from .callers import Caller, CallerRegistry
from .service import Call

log = logging.getLogger("randomd.polkit")

_AUTHORITY = dict(destination="org.freedesktop.PolicyKit1",
                  path="/org/freedesktop/PolicyKit1/Authority",
                  interface="org.freedesktop.PolicyKit1.Authority")
_ALLOW_USER_INTERACTION = 1
# A check that cannot prompt is answered in milliseconds; one that prompts
# waits for a person to type a password.
NONINTERACTIVE_TIMEOUT = 10.0
INTERACTIVE_TIMEOUT = 300.0


class Authority:
    """Authorizes calls for polkit actions."""

    def __init__(self, bus: Bus, callers: CallerRegistry) -> None:
        self._bus = bus
        self._callers = callers
        self._ids = itertools.count(1)

    async def authorize(self, call_: Call, action: str) -> Caller:
        """Return the caller when it may do *action*; raise AccessDenied or
        InteractiveAuthorizationRequired otherwise."""
        caller = await self._callers.lookup(call_.sender)
        if caller.uid == 0:
            return caller
        authorized, challenge = await self._check(call_, action)
        if authorized:
            return caller
        if challenge and not call_.interactive:
            raise errors.InteractiveAuthorizationRequired(
                f"Authentication is required for {action}; allow interactive authorization.")
        raise errors.AccessDenied(f"Not authorized for {action}.")

    async def _check(self, call_: Call, action: str) -> tuple[bool, bool]:
        subject = ["system-bus-name", {"name": Variant("s", call_.sender)}]
        flags = _ALLOW_USER_INTERACTION if call_.interactive else 0
        msg = Message(**_AUTHORITY, member="CheckAuthorization", signature="(sa{sv})sa{ss}us",
                      body=[subject, action, {}, flags, f"randomd-{next(self._ids)}"])
        timeout = INTERACTIVE_TIMEOUT if call_.interactive else NONINTERACTIVE_TIMEOUT
        try:
            (result,) = await call(self._bus, msg, timeout)
        except DBusError as error:
            log.warning("polkit check of %s failed: %s", action, error.text)
            raise errors.AccessDenied(f"Cannot check authorization for {action}: "
                                      "polkit is not available.") from None
        except TimeoutError:
            log.warning("polkit did not answer for %s in %g s", action, timeout)
            raise errors.AccessDenied(f"Cannot check authorization for {action}: "
                                      "polkit did not answer in time.") from None
        authorized, challenge, _details = result
        return authorized, challenge
