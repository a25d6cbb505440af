"""randomd.client.aio: randomd for asyncio programs, with the names of randomd.client.

    import asyncio
    from randomd.client import aio

    async def main():
        async with aio.Client() as randomd:
            print(await randomd.quick(16))
            jobs = [await randomd.slow(8) for _ in range(10)]
            print(await asyncio.gather(*jobs))

    asyncio.run(main())

A Job is awaitable (``number = await job``) and behaves as an asyncio
future: cancelling the task that awaits it cancels the job on randomd, for
every awaiter (``asyncio.shield(job)`` keeps it running).  ``await
job.wait()``, ``await job.cancel()``, ``job.add_done_callback(f)`` and
``async for job in job.progress_updates()`` replace the blocking forms.
The errors are those of randomd.client.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, TypedDict

from . import _core
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


class Job(_core.JobBase):
    """A slow job on randomd: an awaitable that gives its number.

    Attributes as in randomd.client.Job: ``id``, ``path``, ``bits``,
    ``state``, ``bits_done``, ``progress``, ``ready``, ``error``,
    ``expired``.  ``value`` is the number of an ended job (or raises its
    error); of a job that has not ended it raises asyncio.InvalidStateError.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._future: asyncio.Future[int] = self._conn.loop.create_future()
        self._future.add_done_callback(self._future_done)
        self._queues: list[asyncio.Queue[bool]] = []

    def __await__(self) -> Generator[Any, None, int]:
        return self._future.__await__()

    def _future_done(self, future: asyncio.Future[int]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: the job's error is not "never retrieved"
        elif not self._ended and not self._conn.closed:
            # An awaiting task was cancelled: so is the job, as its future.
            self._conn.spawn(self._conn._quiet(self._conn.cancel(self)))

    def _notify_end(self) -> None:
        if not self._future.done():
            if self._exception is not None:
                self._future.set_exception(self._exception)
            else:
                self._future.set_result(self._number)  # type: ignore[arg-type]
        self._wake(False)

    def _close(self) -> None:
        super()._close()
        if not self._future.done():
            self._future.set_exception(Closed(
                f"The randomd client was closed before job {self.id} ended "
                "(it goes on in randomd)."))
        self._wake(False)

    def _on_step(self) -> None:
        self._wake(True)

    def _wake(self, step: bool) -> None:
        for queue in self._queues:
            queue.put_nowait(step)

    @property
    def value(self) -> int:
        """The number of an ended job; raises its error if it did not complete."""
        if not self._ended:
            raise asyncio.InvalidStateError(f"job {self.id} has not ended")
        return self._value()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until the job ends or *timeout* seconds pass; return ``ready``.

        Cancelling this wait leaves the job running.  Raises Closed when the
        client is closed before the job ends.
        """
        if not self._ended:
            try:
                async with asyncio.timeout(timeout):
                    await self._wait_end()
            except TimeoutError:
                pass
        return self._ended

    async def result(self, timeout: float | None = None) -> int:
        """The number; TimeoutError after *timeout* seconds (the job goes on)."""
        if not await self.wait(timeout):
            raise TimeoutError(f"Job {self.id} did not end within {timeout:g} s.")
        return self._value()

    async def collect(self, timeout: float | None = None) -> int:
        """The number, as ``await job``, but: cancelling this leaves the job running, and
        a job whose number randomd refuses (another user's) raises NotAuthorized at once
        instead of once it ends.  TimeoutError after *timeout* seconds."""
        async with asyncio.timeout(timeout):
            return await self._collect()

    async def cancel(self) -> None:
        """End the job as cancelled on randomd; return once its end is seen.

        A no-op for a job that has ended.
        """
        await self._cancel()

    def add_done_callback(self, func: Callable[[Job], Any]) -> None:
        """Call ``func(job)`` once the job ends (soon if it has), in the loop."""
        if self._ended:
            self._conn.loop.call_soon(self._run_callback, func)
        else:
            self._callbacks.append(func)

    add_callback = add_done_callback

    def on_progress(self, func: Callable[[Job], Any]) -> None:
        """Call ``func(job)`` at each progress step randomd announces, the last one included."""
        self._add_progress_callback(func)

    def set_expiry(self, seconds: float) -> None:
        """If the job has not ended within *seconds* from now, cancel it on randomd.

        The job then counts as expired: ``state`` is expired and it raises Expired.
        """
        self._set_expiry(float(seconds))

    async def progress_updates(self) -> AsyncIterator[Job]:
        """The job at each progress step, the last one included; ends when the job ends."""
        if self._ended:
            return
        queue: asyncio.Queue[bool] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while await queue.get():
                yield self
        finally:
            self._queues.remove(queue)
        if not self._ended:
            await self._wait_end()  # raises Closed

    async def info(self) -> JobInfo:
        """The job's properties, read from randomd now."""
        return await self._info()


class _Options(TypedDict):
    """The keywords of Client, kept for Connection.open."""

    bus: str
    address: str | None
    interactive: bool
    timeout: float | None


class Client:
    """A connection to randomd for asyncio.

    ``await Client.connect(...)`` or ``async with Client(...)``.

    The keywords are those of randomd.client.Client: *bus* ("system" or
    "session"), *address* (a D-Bus address, overrides *bus*), *interactive*
    (let polkit ask for a password; such calls wait up to 300 s) and
    *timeout* (bounds every other call answered at once; None: no bound).
    """

    def __init__(self, *, bus: str = "system", address: str | None = None,
                 interactive: bool = False, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self._options = _Options(bus=bus, address=address, interactive=interactive,
                                 timeout=timeout)
        self._connection: _core.Connection | None = None

    @classmethod
    async def connect(cls, *, bus: str = "system", address: str | None = None,
                      interactive: bool = False,
                      timeout: float | None = DEFAULT_TIMEOUT) -> Client:
        """A connected Client; Unavailable when there is no bus to connect to."""
        client = cls(bus=bus, address=address, interactive=interactive, timeout=timeout)
        await client._open()
        return client

    async def _open(self) -> None:
        if self._connection is None:
            self._connection = await _core.Connection.open(**self._options, job_class=Job)

    async def __aenter__(self) -> Client:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def _conn(self) -> _core.Connection:
        if self._connection is None:
            raise Closed("The randomd client is not connected: use 'await Client.connect()' "
                         "or 'async with Client()'.")
        return self._connection

    @property
    def closed(self) -> bool:
        return self._connection is not None and self._connection.closed

    async def close(self) -> None:
        """Leave the bus.  Jobs go on in randomd; awaiting one that has not ended raises Closed."""
        if self._connection is not None:
            await self._connection.close()

    async def quick(self, bits: int) -> int:
        """A uniformly random integer in [0, 2**bits), at once (1 <= bits <= MaxQuickBits)."""
        return await self._conn.quick(bits)

    async def bytes(self, count: int) -> builtins.bytes:
        """*count* random bytes (1 <= count <= MaxBytes)."""
        return await self._conn.bytes(count)

    async def slow(self, bits: int) -> Job:
        """Start a job that builds a *bits*-bit number one bit at a time; returns at once."""
        return await self._conn.slow(bits)  # type: ignore[return-value]

    async def job(self, id_or_path: int | str) -> Job:
        """A handle on an existing job (7, "7" or its path); the same Job for one held."""
        return await self._conn.job(id_or_path)  # type: ignore[return-value]

    async def jobs(self) -> list[JobInfo]:
        """Every job randomd exports (running ones, and finished ones kept for a while)."""
        return await self._conn.jobs()

    async def cancel_all(self) -> None:
        """Cancel every unfinished job (polkit org.randomd.Random1.manage-jobs)."""
        await self._conn.cancel_all()

    async def reload(self) -> None:
        """Make randomd re-read its configuration (polkit org.randomd.Random1.configure)."""
        await self._conn.reload()

    async def version(self) -> str:
        """randomd's version."""
        return await self._conn.version()

    async def limits(self) -> Limits:
        """randomd's limits.

        max_quick_bits, max_bytes, max_slow_bits, max_jobs and max_jobs_per_user.
        """
        return await self._conn.limits()

    async def slow_bit_interval(self) -> float:
        """Seconds per bit of jobs started from now on."""
        return await self._conn.slow_bit_interval()

    async def set_slow_bit_interval(self, seconds: float) -> None:
        """Set the seconds per bit of jobs started from now on (polkit configure)."""
        await self._conn.set_slow_bit_interval(seconds)
