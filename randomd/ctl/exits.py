"""randomctl's exit statuses, and the one exception that carries a failure to main()."""

from __future__ import annotations

OK = 0
FAILURE = 1  # randomd refused or failed the request, a job did not complete, a timeout
USAGE = 2  # the command line is wrong, or an argument's value is outside randomd's limits
NOT_AUTHORIZED = 4  # the bus policy or polkit said no
UNAVAILABLE = 69  # no bus, randomd is not running, or a bus library unknown (EX_UNAVAILABLE)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

HELP = """\
exit status:
  0    success
  1    failure: randomd refused the request (a quota, an unknown job) or
       failed it, a job did not complete, or randomd did not answer within
       --timeout
  2    usage: the command line is wrong, or a value is outside randomd's
       limits (whether randomctl or randomd finds out)
  4    not authorized: the bus policy or polkit refused the action
  69   unavailable: no bus to connect to, randomd is not running, or the
       installed D-Bus library is a release randomctl does not know
  130  interrupted by Ctrl-C (slow cancels its job first)"""

# The keys of an error's JSON object, every one always present (null when
# it does not apply), as randomctl(1) documents them.
ERROR_KEYS = ("message", "exit_status", "dbus_error", "action", "id", "path", "state",
              "timeout")


class CtlError(Exception):
    """A failure reported as one sentence, with an exit status.

    *dbus_error* is the D-Bus error name when the failure came from the bus;
    *details* are the other keys of ERROR_KEYS: the polkit *action*, the
    job's *id* and *path*, the *state* it ended in, the *timeout* that ran out.
    """

    def __init__(self, status: int, message: str, dbus_error: str | None = None,
                 **details: object) -> None:
        super().__init__(message)
        unknown = set(details) - set(ERROR_KEYS)
        if unknown:
            raise TypeError(f"CtlError has no detail {', '.join(sorted(unknown))}")
        self.status = status
        self.message = message
        self.dbus_error = dbus_error
        self.details = details

    def as_json(self) -> dict[str, object]:
        """The error as the JSON object --json prints on stdout."""
        known = {"message": self.message, "exit_status": self.status,
                 "dbus_error": self.dbus_error, **self.details}
        return {"error": {key: known.get(key) for key in ERROR_KEYS}}
