"""The exceptions of randomd.client: one class per way a request can fail.

Every class is an Error, with .dbus_name (the D-Bus error name, or "") and a
one-sentence str().  randomd's own errors keep the names the daemon uses
(randomd.errors); the client adds Unavailable, Timeout, JobLost and Closed.
"""

from __future__ import annotations

from typing import ClassVar

from .. import errors as _daemon

__all__ = [
    "Error", "InvalidArgument", "QuotaExceeded", "NoSuchJob", "Cancelled", "Expired",
    "ShuttingDown", "Failed", "NotAuthorized", "Unavailable", "Timeout", "JobLost", "Closed",
]

_STANDARD = "org.freedesktop.DBus.Error."


class Error(Exception):
    """A request to randomd failed; str() says why in one sentence.

    ``dbus_name`` is the D-Bus error name the failure came with (or would
    have, when the client noticed it first), or "" when D-Bus has none.
    """

    default_dbus_name: ClassVar[str] = ""

    def __init__(self, message: str, dbus_name: str | None = None) -> None:
        super().__init__(message)
        self.dbus_name = self.default_dbus_name if dbus_name is None else dbus_name

    # Picklable with its D-Bus name (multiprocessing, logging).
    def __reduce__(self) -> tuple[type[Error], tuple[str, str]]:
        return (self.__class__, (str(self), self.dbus_name))


class InvalidArgument(Error):
    """An argument outside randomd's limits (a bits of 0, more bits than MaxQuickBits)."""

    default_dbus_name = _daemon.InvalidArgument.dbus_name


class QuotaExceeded(Error):
    """Too many unfinished jobs: the caller's MaxJobsPerUser, or randomd's MaxJobs."""

    default_dbus_name = _daemon.QuotaExceeded.dbus_name


class NoSuchJob(Error):
    """No job with that id or path (it never existed, or it was removed)."""

    default_dbus_name = _daemon.NoSuchJob.dbus_name


class Cancelled(Error):
    """The job was cancelled."""

    default_dbus_name = _daemon.Cancelled.dbus_name


class Expired(Error):
    """The job ran out of time: randomd's JobTimeout, or the client's set_expiry()."""

    default_dbus_name = _daemon.Expired.dbus_name


class ShuttingDown(Error):
    """randomd is stopping: the job failed, or the request was refused."""

    default_dbus_name = _daemon.ShuttingDown.dbus_name


class Failed(Error):
    """randomd failed the request (for instance Reload of a broken configuration)."""

    default_dbus_name = _daemon.Failed.dbus_name


class NotAuthorized(Error):
    """The bus policy or polkit refused the request.

    ``interactive_required`` is True when polkit would have asked for a
    password but the call did not allow it (dbus_name
    InteractiveAuthorizationRequired): retry with ``interactive=True``, with an
    authentication agent running.  False means no (AccessDenied).
    """

    default_dbus_name = _daemon.AccessDenied.dbus_name

    @property
    def interactive_required(self) -> bool:
        return self.dbus_name == _daemon.InteractiveAuthorizationRequired.dbus_name


class Unavailable(Error):
    """No bus to connect to, or randomd is not running and cannot be started."""


class Timeout(Error, TimeoutError):
    """A call got no answer within the client's ``timeout``."""


class JobLost(Error):
    """randomd left the bus (stopped, crashed, restarted) before the job ended: it is gone."""


class Closed(Error):
    """The client was closed while something still waited on it."""


# Error names randomd answers with, by class.
_BY_NAME: dict[str, type[Error]] = {cls.default_dbus_name: cls for cls in (
    InvalidArgument, QuotaExceeded, NoSuchJob, Cancelled, Expired, ShuttingDown, Failed)}
_BY_NAME[_daemon.AccessDenied.dbus_name] = NotAuthorized
_BY_NAME[_daemon.InteractiveAuthorizationRequired.dbus_name] = NotAuthorized
# The bus's answers when randomd is not there, cannot be started or left.
_UNAVAILABLE = {_STANDARD + name for name in (
    "ServiceUnknown", "NameHasNoOwner", "NoReply", "Disconnected", "NoServer", "TimedOut",
    "Timeout")}


def from_dbus(name: str, text: str, what: str = "the call") -> Error:
    """The Error for a D-Bus error reply *name* with message *text*.

    *what* names the request in sentences the client writes itself.
    """
    text = " ".join(text.split())
    cls = _BY_NAME.get(name)
    if cls is NotAuthorized and name == _daemon.InteractiveAuthorizationRequired.dbus_name:
        return NotAuthorized(text or f"Authentication is required for {what}; "
                             "allow interactive authorization to be asked.", name)
    if cls is not None:
        return cls(text or f"randomd refused {what} ({name}).", name)
    if name == _STANDARD + "ServiceUnknown" or name == _STANDARD + "NameHasNoOwner":
        return Unavailable("randomd is not running and cannot be started: " + (
            text.rstrip(".") or name) + ".", name)
    if name in _UNAVAILABLE or name.startswith(_STANDARD + "Spawn."):
        return Unavailable(f"randomd is unavailable: {text.rstrip('.') or name}.", name)
    return Error(text or f"{what} failed with {name}.", name)
