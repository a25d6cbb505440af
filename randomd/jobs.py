"""Slow jobs: numbers built one random bit at a time, free of D-Bus.

A JobManager keeps a table of jobs.  Each running job is one asyncio task
that draws a bit per interval; the manager alone decides how a job ended and
tells its listeners (JobListener: the D-Bus layer, systemd's status line),
which subscribe when they are made.  Everything here serves one
invariant: every job that start() accepted reaches exactly one terminal
state, announced by exactly one job_finished, and later leaves the table
with exactly one job_removed.

A job belongs to its owner's uid, not to the connection that started it:
when that connection leaves the bus the job runs on (job_owner_left tells
the D-Bus layer), so that a job started by one command can be collected by
the next.  Quotas, JobTimeout and the caps on kept results bound what such
jobs can hold.

That is why a job's end is handled in its task's done callback and never in
the coroutine: a task cancelled before its first step never runs a line of
its coroutine (not even a finally clause), but its done callbacks always run.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import Cancelled, Expired, Failed, QuotaExceeded, RandomdError, ShuttingDown
from .limits import check_range
from .randomness import random_integer

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger("randomd.jobs")

# Finished jobs wait for their ResultTTL, but a uid keeps at most this many
# times MaxJobsPerUser of them, and randomd this many times MaxJobs: enough
# for a client that collects its results between rounds of jobs, and a bound
# on the table (and on the GetManagedObjects reply, which must stay far below
# the bus's message size limit) however fast a client starts and cancels jobs.
RESULTS_PER_JOB_SLOT = 4
# A running job wakes at most this often, whatever its SlowBitInterval, and
# draws the bits whose time has come: API.md announces progress at most about
# ten times a second anyway, and a wake-up per bit made short intervals cost
# a timer and a task step per bit.
PROGRESS_STEP = 0.1


class JobState(enum.StrEnum):
    """A job's State property; every state but RUNNING is terminal."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(eq=False)
class Job:
    """One slow job as anyone may see it, except for its number."""

    id: int
    bits: int
    owner: str
    owner_uid: int
    interval: float
    created_us: int
    finished_us: int = 0
    bits_done: int = 0
    state: JobState = JobState.RUNNING
    # False once the connection that started the job has left the bus.
    owner_connected: bool = True
    error: type[RandomdError] | None = None
    error_message: str = ""
    # The owner's secret.  Out of repr, so that no log line formatting a job
    # can carry it; set only once the job has completed.
    number: int | None = field(default=None, repr=False)

    @property
    def progress(self) -> float:
        """The share of bits drawn so far, from 0.0 to 1.0."""
        return self.bits_done / self.bits

    @property
    def finished(self) -> bool:
        """Whether the job has reached its terminal state."""
        return self.state != JobState.RUNNING

    @property
    def error_name(self) -> str:
        """The D-Bus error name of a job that did not complete, else ""."""
        return self.error.dbus_name if self.error is not None else ""


class JobListener:
    """What a part of randomd hears about jobs, called synchronously from the loop.

    A listener overrides the events it needs.
    """

    def job_started(self, job: Job) -> None:
        """start() accepted *job*."""

    def job_progress(self, job: Job) -> None:
        """*job* drew more bits (not told for the last ones: job_finished tells them)."""

    def job_finished(self, job: Job) -> None:
        """*job* reached its terminal state."""

    def job_removed(self, job: Job) -> None:
        """*job* left the table."""

    def job_owner_left(self, job: Job) -> None:
        """The connection that started *job* left the bus; the job goes on."""


def wall_clock_us() -> int:
    """Microseconds since the epoch, for a job's Created and Finished."""
    return time.time_ns() // 1000


_TERMINAL_STATE = {Cancelled: JobState.CANCELLED, Expired: JobState.EXPIRED}


@dataclass(eq=False)
class _Run:
    """The manager's private side of one job."""

    job: Job
    task: asyncio.Task[None] | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # Why the manager stopped the task; the first reason given wins.
    stop_reason: RandomdError | None = None
    deadline: asyncio.TimerHandle | None = None
    # Once finished: the timer that removes it after ResultTTL.
    expiry: asyncio.TimerHandle | None = None
    # The number while it is being built and before the job is declared
    # completed: not returned by the task, so that it is never in a task's repr.
    number: int = field(default=0, repr=False)


class JobManager:
    """The table of slow jobs and the tasks that run them."""

    def __init__(self, settings: Settings, listeners: Iterable[JobListener] = (), *,
                 clock: Callable[[], int] = wall_clock_us) -> None:
        self._settings = settings  # limits are read at each use: a reload is in effect at once
        self._listeners = list(listeners)
        self._clock = clock
        self._runs: dict[int, _Run] = {}  # by id, so in id order
        self._last_id = 0
        self._active = 0
        self._active_by_uid: Counter[int] = Counter()
        # Finished jobs waiting for their ResultTTL, oldest first (see
        # RESULTS_PER_JOB_SLOT).
        self._retained: dict[int, _Run] = {}
        self._retained_by_uid: dict[int, deque[_Run]] = {}
        # The jobs of each owner still on the bus, so that a departure (any
        # name's on the bus, not only clients') costs nothing when it had none.
        self._by_owner: dict[str, dict[int, _Run]] = {}
        self._shutting_down = False

    def subscribe(self, listener: JobListener) -> None:
        """Tell *listener* of every job's events (called from constructors)."""
        self._listeners.append(listener)

    # Starting and counting

    def start(self, owner: str, owner_uid: int, bits: int, interval: float) -> Job:
        """Accept a job of *bits* bits drawn every *interval* seconds and start its task.

        Raises ShuttingDown, InvalidArgument or QuotaExceeded when refused.
        """
        self._admit(owner_uid, bits, interval)
        loop = asyncio.get_running_loop()
        self._last_id += 1
        job = Job(self._last_id, bits, owner, owner_uid, interval, self._clock())
        run = _Run(job)
        self._runs[job.id] = run
        self._by_owner.setdefault(owner, {})[job.id] = run
        self._active += 1
        self._active_by_uid[owner_uid] += 1
        run.task = loop.create_task(self._draw(run), name=f"randomd-job-{job.id}")
        run.task.add_done_callback(functools.partial(self._task_done, run))
        timeout = self._settings.current.job_timeout
        run.deadline = loop.call_later(timeout, self._expire, run, timeout)
        if not self._notify("job_started", job):
            self._stop(run, _internal_error(job))
        return job

    @property
    def active(self) -> int:
        """How many jobs are unfinished."""
        return self._active

    @property
    def started(self) -> int:
        """How many jobs start() accepted since the manager was made."""
        return self._last_id

    def idle(self) -> bool:
        """Whether the table is empty: no job running, no result retained."""
        return not self._runs

    def unfinished_for(self, owner_uid: int) -> int:
        """How many unfinished jobs this uid has."""
        return self._active_by_uid[owner_uid]

    def check_bits(self, bits: int) -> None:
        """Refuse a job of *bits* bits with InvalidArgument naming MaxSlowBits.

        The D-Bus layer asks before it asks polkit; start() asks again, as
        the limit may have been reloaded while polkit was answering.
        """
        check_range("bits", bits, 1, self._settings.current.max_slow_bits, "MaxSlowBits")

    def _admit(self, owner_uid: int, bits: int, interval: float) -> None:
        if self._shutting_down:
            raise ShuttingDown("randomd is shutting down.")
        self.check_bits(bits)
        config = self._settings.current
        if not (math.isfinite(interval) and interval >= 0):
            # The D-Bus layer checks SlowBitInterval: this is a bug, not a caller's mistake.
            raise ValueError(f"interval must be a finite number of seconds >= 0, not {interval}")
        count = self.unfinished_for(owner_uid)
        if count >= config.max_jobs_per_user:
            raise QuotaExceeded(f"You already have {_jobs(count)} (MaxJobsPerUser).")
        if self._active >= config.max_jobs:
            raise QuotaExceeded(f"randomd already has {_jobs(self._active)} (MaxJobs).")

    # Stopping

    def cancel(self, job: Job) -> None:
        """Ask a running job to end as cancelled; a no-op on a finished job.

        Returns at once: job_finished follows once the job's task has stopped.
        """
        run = self._runs.get(job.id)
        if run is not None and run.job is job:
            self._stop(run, Cancelled(f"Job {job.id} was cancelled."))

    def cancel_all(self) -> int:
        """Cancel every unfinished job; returns how many this call cancelled."""
        return sum(self._stop(run, Cancelled(f"Job {run.job.id} was cancelled."))
                   for run in list(self._runs.values()))

    def owner_gone(self, owner: str) -> None:
        """Note that the connection *owner* left the bus; its jobs go on.

        Running jobs run to their end and count against their uid's quota
        as before; finished ones stay their ResultTTL.  Any connection of
        the owner's uid may still wait for them or cancel them.
        """
        for run in self._by_owner.pop(owner, {}).values():
            run.job.owner_connected = False
            self._notify("job_owner_left", run.job)

    async def shutdown(self) -> None:
        """Refuse new jobs, end every running one as failed with ShuttingDown.

        Returns once every task has stopped and every job_finished was called.
        """
        self._shutting_down = True
        unfinished = [run for run in self._runs.values() if not run.job.finished]
        for run in unfinished:
            self._stop(run, ShuttingDown("randomd is shutting down."))
        for run in unfinished:
            await run.finished.wait()

    def _expire(self, run: _Run, timeout: float) -> None:
        self._stop(run, Expired(f"Job {run.job.id} ran longer than JobTimeout ({timeout:g} s)."))

    def _stop(self, run: _Run, reason: RandomdError) -> bool:
        """Cancel the job's task, to end with *reason*; False if it is already ending."""
        if run.stop_reason is not None or run.task is None or run.task.done():
            # A done task's outcome is decided: its done callback is on its way.
            return False
        run.stop_reason = reason
        run.task.cancel()
        return True

    # Waiting

    async def wait(self, job: Job) -> int:
        """The job's number once it completed; raises its error if it did not.

        Returns at once for a finished job.  Any number of waiters may wait.
        """
        if not job.finished:
            # An unfinished job is always in the table.
            await self._runs[job.id].finished.wait()
        if job.state == JobState.COMPLETED:
            assert job.number is not None
            return job.number
        assert job.error is not None
        raise job.error(job.error_message)

    # A job's life

    async def _draw(self, run: _Run) -> None:
        """Draw each bit once its interval has passed, waking at most every PROGRESS_STEP.

        Bit k is drawn no earlier than k intervals after the start, and the
        last one at the end: the job takes bits * interval, as if it slept
        once per bit, but without thousands of timers when intervals are
        short.  Progress is told at each wake-up but the last, whose end
        tells it.
        """
        job = run.job
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + job.bits * job.interval
        while True:
            now = loop.time()
            wake = max(now + PROGRESS_STEP, start + (job.bits_done + 1) * job.interval)
            if wake + PROGRESS_STEP > end:  # the last step is told with the end
                wake = end
            await asyncio.sleep(wake - now)
            due = job.bits if wake == end else min(int((loop.time() - start) / job.interval),
                                                   job.bits)
            if due > job.bits_done:  # the new bits go below those drawn before
                count = due - job.bits_done
                run.number = run.number << count | random_integer(count)
                job.bits_done = due
            if job.bits_done == job.bits:
                return
            for listener in self._listeners:
                listener.job_progress(job)  # raising fails the job, like any bug here

    def _task_done(self, run: _Run, task: asyncio.Task[None]) -> None:
        """Decide how the job ended, now that its task has really stopped."""
        job = run.job
        reason: RandomdError | None
        if task.cancelled():
            reason = run.stop_reason
            if reason is None:
                log.error("Job %d was cancelled by someone other than randomd.jobs.", job.id)
                reason = _internal_error(job)
        elif (error := task.exception()) is not None:
            log.error("Job %d failed: internal error.", job.id, exc_info=error)
            reason = _internal_error(job)
        else:
            reason = None
        self._finish(run, reason)

    def _finish(self, run: _Run, reason: RandomdError | None) -> None:
        job = run.job
        job.finished_us = self._clock()
        if reason is None:
            job.number = run.number
            job.state = JobState.COMPLETED
        else:
            job.state = _TERMINAL_STATE.get(type(reason), JobState.FAILED)
            job.error, job.error_message = type(reason), str(reason)
        run.number = 0
        run.task = None
        if run.deadline is not None:
            run.deadline.cancel()
        self._active -= 1
        self._active_by_uid[job.owner_uid] -= 1
        if not self._active_by_uid[job.owner_uid]:
            del self._active_by_uid[job.owner_uid]
        self._notify("job_finished", job)
        run.finished.set()
        self._retire(run)

    def _retire(self, run: _Run) -> None:
        config = self._settings.current
        ttl = config.result_ttl
        if ttl <= 0:
            self._remove(run)
            return
        run.expiry = asyncio.get_running_loop().call_later(ttl, self._remove, run)
        uid = run.job.owner_uid
        self._retained[run.job.id] = run
        mine = self._retained_by_uid.setdefault(uid, deque())
        mine.append(run)
        # Past a limit, the oldest results leave before their ResultTTL.
        while len(mine) > RESULTS_PER_JOB_SLOT * config.max_jobs_per_user:
            self._remove(mine[0])
        while len(self._retained) > RESULTS_PER_JOB_SLOT * config.max_jobs:
            self._remove(next(iter(self._retained.values())))

    def _remove(self, run: _Run) -> None:
        if run.expiry is not None:
            run.expiry.cancel()
            run.expiry = None
        if self._retained.pop(run.job.id, None) is run:
            mine = self._retained_by_uid[run.job.owner_uid]
            mine.remove(run)
            if not mine:
                del self._retained_by_uid[run.job.owner_uid]
        mine_by_owner = self._by_owner.get(run.job.owner)
        if (mine_by_owner is not None and mine_by_owner.pop(run.job.id, None) is run
                and not mine_by_owner):
            del self._by_owner[run.job.owner]
        if self._runs.pop(run.job.id, None) is run:
            self._notify("job_removed", run.job)

    def _notify(self, event: str, job: Job) -> bool:
        """Tell every listener; a bug there is logged and must not break the table.

        False if a listener raised.
        """
        ok = True
        for listener in self._listeners:
            try:
                getattr(listener, event)(job)
            except Exception:
                log.exception("%s raised for job %d.", event, job.id)
                ok = False
        return ok


def _internal_error(job: Job) -> Failed:
    return Failed(f"Job {job.id} failed: internal error.")


def _jobs(count: int) -> str:
    return f"{count} unfinished job{'' if count == 1 else 's'}"
