"""Every failure randomd reports, as an exception class named after its D-Bus error.

The core raises these; the D-Bus layer answers them by name, with str(error)
as the one-sentence message.  Nothing here imports a bus library.
"""

from typing import ClassVar

from .api import ERROR_PREFIX
from .api import STANDARD_ERROR_PREFIX as _STANDARD


class RandomdError(Exception):
    """A failure a caller is told about: a D-Bus error name and one sentence."""

    dbus_name: ClassVar[str] = ERROR_PREFIX + "Failed"


class InvalidArgument(RandomdError):
    dbus_name = ERROR_PREFIX + "InvalidArgument"


class QuotaExceeded(RandomdError):
    dbus_name = ERROR_PREFIX + "QuotaExceeded"


class NoSuchJob(RandomdError):
    dbus_name = ERROR_PREFIX + "NoSuchJob"


class Cancelled(RandomdError):
    dbus_name = ERROR_PREFIX + "Cancelled"


class Expired(RandomdError):
    dbus_name = ERROR_PREFIX + "Expired"


class ShuttingDown(RandomdError):
    dbus_name = ERROR_PREFIX + "ShuttingDown"


class Failed(RandomdError):
    dbus_name = ERROR_PREFIX + "Failed"


class AccessDenied(RandomdError):
    dbus_name = _STANDARD + "AccessDenied"


class InteractiveAuthorizationRequired(RandomdError):
    dbus_name = _STANDARD + "InteractiveAuthorizationRequired"


class UnknownObject(RandomdError):
    dbus_name = _STANDARD + "UnknownObject"


class UnknownInterface(RandomdError):
    dbus_name = _STANDARD + "UnknownInterface"


class UnknownMethod(RandomdError):
    dbus_name = _STANDARD + "UnknownMethod"


class UnknownProperty(RandomdError):
    dbus_name = _STANDARD + "UnknownProperty"


class PropertyReadOnly(RandomdError):
    dbus_name = _STANDARD + "PropertyReadOnly"


class InvalidArgs(RandomdError):
    dbus_name = _STANDARD + "InvalidArgs"


class ConfigError(Exception):
    """The configuration file cannot be used; str(error) names the key and the problem."""
