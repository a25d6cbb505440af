"""randomd.client: random numbers from randomd, the D-Bus random number service.

    from randomd.client import Client

    with Client() as randomd:
        print(randomd.quick(16))          # at once: an int below 2**16
        job = randomd.slow(8)             # a job, built one bit at a time
        job.set_expiry(30)                # cancelled on randomd if not done by then
        job.add_callback(lambda j: print("done:", j.state))
        print(job.value)                  # waits for the job's number

Client is the blocking form: it runs a private asyncio loop in a background
thread (the client's own thread), so one Client may be shared by several
threads.  While it has no job to follow, quick() and bytes() run that loop
in the calling thread instead, which saves two thread switches a call.
randomd.client.aio has the same names for asyncio programs.

Every call that randomd answers at once is bounded by the client's
``timeout`` (25 s; past it: Timeout).  Nothing that waits for a job has a
timeout unless the caller gives one.  Failures are Error subclasses with
``.dbus_name`` and a one-sentence str(): InvalidArgument, QuotaExceeded,
NoSuchJob, Cancelled, Expired, ShuttingDown, Failed, NotAuthorized,
Unavailable, Timeout, JobLost, Closed.

Callbacks (Job.add_callback, Job.on_progress) run in the client's own
thread, one at a time: keep them short.  A blocking call of the client made
from a callback raises RuntimeError instead of deadlocking.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from . import _core
from ._runner import Runner
from ._types import JobInfo, Limits, State
from .errors import (
    Cancelled,
    Closed,
    Error,
    Expired,
    Failed,
    InvalidArgument,
    JobLost,
    NoSuchJob,
    NotAuthorized,
    QuotaExceeded,
    ShuttingDown,
    Timeout,
    Unavailable,
)

__all__ = [
    "Client", "Job", "JobInfo", "Limits", "State", "DEFAULT_TIMEOUT",
    "Error", "InvalidArgument", "QuotaExceeded", "NoSuchJob", "Cancelled", "Expired",
    "ShuttingDown", "Failed", "NotAuthorized", "Unavailable", "Timeout", "JobLost", "Closed",
]

DEFAULT_TIMEOUT = _core.DEFAULT_TIMEOUT
T = TypeVar("T")


def _run(conn: _core.Connection, coro: Coroutine[Any, Any, T], *, here: bool = False) -> T:
    """Run *coro* in the client's loop and return its result, from any other thread.

    *here*: a short call that may run the loop in the calling thread (_runner.py).
    """
    if conn.closed:
        coro.close()
        raise Closed("The randomd client is closed.")
    if threading.current_thread() is conn.thread:
        coro.close()
        raise RuntimeError("a blocking call of randomd.client was made from one of its "
                           "callbacks, which would deadlock; do it from another thread")
    runner: Runner = conn.runner
    return runner.run(coro, here=here)


class Job(_core.JobBase):
    """A slow job on randomd, in the style of RPyC's AsyncResult.

    Attributes, as last known: ``id``, ``path``, ``bits``; ``state`` (a
    State: running, completed, failed, cancelled, expired), ``bits_done``,
    ``progress`` (0.0 to 1.0).  ``ready``: the job has ended; ``error``: it
    ended without a number; ``expired``: it ended expired on randomd, or its
    local expiry passed first.  After a local expiry ``state`` is expired;
    after JobLost it is failed.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._done_flag = threading.Event()

    def _notify_end(self) -> None:
        self._done_flag.set()

    def _close(self) -> None:
        super()._close()
        self._done_flag.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends or *timeout* seconds pass; return ``ready``.

        Raises Closed when the client is closed before the job ends.
        """
        if not self._ended and not self._done_flag.is_set():
            if threading.current_thread() is self._conn.thread:
                raise RuntimeError(f"waiting for job {self.id} from a callback of its client "
                                   "would deadlock")
            self._done_flag.wait(timeout)
        if not self._ended and self._conn.closed:
            raise Closed(f"The randomd client was closed before job {self.id} ended "
                         "(it goes on in randomd).")
        return self._ended

    @property
    def value(self) -> int:
        """The number; blocks until the job ends; raises its error if it did not complete."""
        self.wait()
        return self._value()

    def result(self, timeout: float | None = None) -> int:
        """The number, as concurrent.futures: TimeoutError if the job has not ended in time.

        The job goes on after a TimeoutError.
        """
        if not self.wait(timeout):
            raise concurrent.futures.TimeoutError(
                f"Job {self.id} did not end within {timeout:g} s.")
        return self._value()

    def add_callback(self, func: Callable[[Job], Any]) -> None:
        """Call ``func(job)`` once the job ends (at once if it has), in the client's thread."""
        self._conn.runner.post(self._add_callback, func)

    def on_progress(self, func: Callable[[Job], Any]) -> None:
        """Call ``func(job)`` at each progress step randomd announces, the last one included."""
        self._conn.runner.post(self._add_progress_callback, func)

    def set_expiry(self, seconds: float) -> None:
        """If the job has not ended within *seconds* from now, cancel it on randomd.

        The job then counts as expired: ``state`` is expired and ``value``
        raises Expired.  A later call replaces the expiry.
        """
        self._conn.runner.post(self._set_expiry, float(seconds))

    def cancel(self) -> None:
        """End the job as cancelled on randomd; return once its end is seen.

        A no-op for a job that has ended.
        """
        if not self._ended:
            _run(self._conn, self._cancel())

    def info(self) -> JobInfo:
        """The job's properties, read from randomd now."""
        return _run(self._conn, self._info())


class Client:
    """A connection to randomd; a context manager, and safe to share between threads.

    *bus* is "system" (randomd's home) or "session"; *address*, a D-Bus
    address, overrides it.  *interactive* lets polkit ask for a password
    (ALLOW_INTERACTIVE_AUTHORIZATION) on calls that may need one, which then
    wait up to 300 s.  *timeout* bounds every other call answered at once
    (None: no bound).  Raises Unavailable when there is no bus to connect to;
    randomd itself is first called by the first request (and may be started
    by the bus then).
    """

    def __init__(self, *, bus: str = "system", address: str | None = None,
                 interactive: bool = False, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self._runner = Runner()
        try:
            self._conn: _core.Connection = self._runner.run(
                _core.Connection.open(bus, address, interactive, timeout, Job))
        except BaseException:
            self._runner.stop()
            raise
        self._conn.runner = self._runner
        self._conn.on_idle = self._runner.check_idle
        self._runner.conn = self._conn

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<randomd.client.Client on {self._conn.label}{' (closed)' if self.closed else ''}>"

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def close(self) -> None:
        """Leave the bus.  Jobs go on in randomd; waiting on one that has not ended raises Closed.

        From a callback it returns at once and the client closes just after.
        """
        if threading.current_thread() is self._runner.thread:
            self._conn.spawn(self._conn.close())
            self._runner.stop_from_loop()
            return
        if not self._runner.stopped:
            try:
                self._runner.run(self._conn.close())
            finally:
                self._runner.stop()

    # -- numbers and jobs ----------------------------------------------------

    def quick(self, bits: int) -> int:
        """A uniformly random integer in [0, 2**bits), at once (1 <= bits <= MaxQuickBits)."""
        return _run(self._conn, self._conn.quick(bits), here=True)

    def bytes(self, count: int) -> builtins.bytes:
        """*count* random bytes (1 <= count <= MaxBytes)."""
        return _run(self._conn, self._conn.bytes(count), here=True)

    def slow(self, bits: int) -> Job:
        """Start a job that builds a *bits*-bit number one bit at a time; returns at once."""
        return _run(self._conn, self._conn.slow(bits))  # type: ignore[return-value]

    def job(self, id_or_path: int | str) -> Job:
        """A handle on an existing job (7, "7" or its path), for instance one another
        process of the same user started.  A job this client holds gives the same Job."""
        return _run(self._conn, self._conn.job(id_or_path))  # type: ignore[return-value]

    def jobs(self) -> list[JobInfo]:
        """Every job randomd exports (running ones, and finished ones kept for a while)."""
        return _run(self._conn, self._conn.jobs())

    def cancel_all(self) -> None:
        """Cancel every unfinished job (polkit org.randomd.Random1.manage-jobs)."""
        _run(self._conn, self._conn.cancel_all())

    def reload(self) -> None:
        """Make randomd re-read its configuration (polkit org.randomd.Random1.configure)."""
        _run(self._conn, self._conn.reload())

    # -- properties ------------------------------------------------------------

    @property
    def version(self) -> str:
        """randomd's version."""
        return _run(self._conn, self._conn.version())

    @property
    def limits(self) -> Limits:
        """randomd's limits.

        max_quick_bits, max_bytes, max_slow_bits, max_jobs and max_jobs_per_user.
        """
        return _run(self._conn, self._conn.limits())

    @property
    def slow_bit_interval(self) -> float:
        """Seconds per bit of jobs started from now on; assigning writes it (polkit configure)."""
        return _run(self._conn, self._conn.slow_bit_interval())

    @slow_bit_interval.setter
    def slow_bit_interval(self, seconds: float) -> None:
        _run(self._conn, self._conn.set_slow_bit_interval(seconds))
