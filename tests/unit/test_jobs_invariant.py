"""The job invariant, over random interleavings of everything that can end a job.

Every job start() accepted must reach exactly one terminal state and produce
exactly one job_finished, after its task stopped; job_removed at most once
and only after job_finished; and after shutdown, once a tiny ResultTTL has
passed, an empty table.

An owner's departure never ends a job: owner_gone stops no task and
finishes nothing, it only marks the owner's jobs (job_owner_left, once per
job), which then end like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from randomd.config import Config
from randomd.errors import QuotaExceeded, ShuttingDown
from randomd.jobs import Job, JobManager, JobState
from randomd.settings import Settings

OWNERS = (":1.1", ":1.2", ":1.3")
UIDS = (1000, 1001)
EVENTS = ("job_started", "job_progress", "job_finished", "job_removed", "job_owner_left")
TIMEOUTS = (0.0, 1e-6, 600.0)  # 0 expires a job at the loop's next turn
TTLS = (0.0, 1e-4)  # small enough to wait for at the end

ARGUMENTS = {
    "start": st.tuples(st.sampled_from(OWNERS), st.sampled_from(UIDS), st.integers(1, 4)),
    "cancel": st.tuples(st.integers(0, 30)),
    "owner_gone": st.tuples(st.sampled_from(OWNERS)),
    "cancel_all": st.tuples(),
    "job_timeout": st.tuples(st.sampled_from(TIMEOUTS)),
    "result_ttl": st.tuples(st.sampled_from(TTLS)),
    "limits": st.tuples(st.integers(1, 4), st.integers(1, 8)),
    "raise_in": st.tuples(st.sampled_from(EVENTS)),
    "wait": st.tuples(st.integers(0, 30)),
    "steps": st.tuples(st.integers(1, 8)),
}
# Starting and turning the loop come more often than the rest, so that most
# examples have several jobs that get far enough to complete, expire and
# fail, not merely be cancelled at their first bit.
KINDS = [*ARGUMENTS, "start", "start", "steps", "steps", "steps"]
operations = st.sampled_from(KINDS).flatmap(
    lambda kind: ARGUMENTS[kind].map(lambda args: (kind, *args)))


class Checker:
    """A JobListener that notes every breach of the invariant (raising here would be swallowed)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        self.started: list[int] = []
        self.finished: Counter[int] = Counter()
        self.removed: Counter[int] = Counter()
        self.owner_left: Counter[int] = Counter()
        self.armed: set[str] = set()
        self._all_removed: tuple[int, asyncio.Future[None]] | None = None

    def job_started(self, job: Job) -> None:
        self.started.append(job.id)
        if job.finished or self.finished[job.id]:
            self.problems.append(f"job {job.id} started as {job.state}")
        self._maybe_raise("job_started")

    def job_progress(self, job: Job) -> None:
        if job.finished or self.finished[job.id]:
            self.problems.append(f"progress of finished job {job.id}")
        self._maybe_raise("job_progress")

    def job_finished(self, job: Job) -> None:
        self.finished[job.id] += 1
        if self.finished[job.id] > 1:
            self.problems.append(f"job {job.id} finished twice")
        if not job.finished or not job.finished_us:
            self.problems.append(f"job {job.id} finished as {job.state}")
        task = self.tasks.get(job.id)
        if task is not None and not task.done():
            self.problems.append(f"job {job.id} finished before its task stopped")
        completed = job.state == JobState.COMPLETED
        if completed != (job.number is not None) or completed == (job.error is not None):
            self.problems.append(f"job {job.id} {job.state} with error {job.error_name!r}")
        self._maybe_raise("job_finished")

    def job_removed(self, job: Job) -> None:
        self.removed[job.id] += 1
        if self.removed[job.id] > 1 or not self.finished[job.id]:
            self.problems.append(f"job {job.id} removed {self.removed[job.id]} times, "
                                 f"finished {self.finished[job.id]} times")
        if self._all_removed is not None:
            count, future = self._all_removed
            if sum(self.removed.values()) >= count and not future.done():
                future.set_result(None)
        self._maybe_raise("job_removed")

    def job_owner_left(self, job: Job) -> None:
        self.owner_left[job.id] += 1
        if self.owner_left[job.id] > 1 or job.owner_connected or self.removed[job.id]:
            self.problems.append(f"job {job.id}: owner left {self.owner_left[job.id]} times, "
                                 f"connected {job.owner_connected}, "
                                 f"removed {self.removed[job.id]} times")
        self._maybe_raise("job_owner_left")

    def _maybe_raise(self, event: str) -> None:
        if event in self.armed:
            self.armed.discard(event)
            raise RuntimeError(f"{event} is broken")

    async def until_removed(self, count: int) -> None:
        """Return once *count* jobs were removed."""
        if sum(self.removed.values()) < count:
            self._all_removed = (count, asyncio.get_running_loop().create_future())
            await self._all_removed[1]


@contextlib.contextmanager
def quiet_jobs_log() -> Iterator[None]:
    """The raising callbacks log tracebacks by design: thousands of them here."""
    logger = logging.getLogger("randomd.jobs")
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = False


class Scenario:
    """One example: a manager, the jobs it accepted and the waiters on them."""

    def __init__(self, ttl: float) -> None:
        self.checker = Checker()
        self.settings = Settings(Path("unused.conf"), dataclasses.replace(Config(), result_ttl=ttl))
        self.manager = JobManager(self.settings, [self.checker])
        self.accepted: list[Job] = []
        self.waiters: list[tuple[Job, asyncio.Task[int]]] = []
        self.departed: set[int] = set()  # ids of the jobs whose owner left while in the table

    async def play(self, script: list[tuple[Any, ...]]) -> None:
        """Apply every operation, checking the counters after each, then shut down."""
        for operation, *args in script:
            if operation == "steps":
                for _ in range(args[0]):
                    await asyncio.sleep(0)  # let the loop turn: part of the interleaving
            else:
                self.apply(operation, *args)
            self.check_counters()
        await asyncio.wait_for(self.manager.shutdown(), 5)
        await self.check_end()

    def apply(self, operation: str, *args: Any) -> None:
        manager = self.manager
        if operation == "start":
            self.start(*args)
        elif operation in ("cancel", "wait") and self.accepted:
            job = self.accepted[args[0] % len(self.accepted)]
            if operation == "cancel":
                manager.cancel(job)
            else:
                self.waiters.append((job, asyncio.create_task(manager.wait(job))))
        elif operation == "owner_gone":
            self.owner_gone(args[0])
        elif operation == "cancel_all":
            assert 0 <= manager.cancel_all() <= manager.active
        elif operation in ("job_timeout", "result_ttl"):
            self.reload(**{operation: args[0]})
        elif operation == "limits":
            self.reload(max_jobs_per_user=args[0], max_jobs=args[1])
        elif operation == "raise_in":
            self.checker.armed.add(args[0])

    def reload(self, **changes: Any) -> None:
        self.settings.apply(dataclasses.replace(self.settings.current, **changes))

    def start(self, owner: str, uid: int, bits: int) -> None:
        before = asyncio.all_tasks()
        try:
            job = self.manager.start(owner, uid, bits, 0.0)
        except QuotaExceeded:
            return
        (self.checker.tasks[job.id],) = asyncio.all_tasks() - before
        self.accepted.append(job)

    def owner_gone(self, owner: str) -> None:
        """The owner leaves: nothing of its jobs may end or be asked to end for it."""
        checker = self.checker
        mine = [job for job in self.accepted
                if job.owner == owner and not checker.removed[job.id]]
        running = [job for job in mine
                   if not job.finished and not checker.tasks[job.id].cancelling()]
        finished_before = checker.finished.copy()
        self.manager.owner_gone(owner)
        assert checker.finished == finished_before
        assert not any(job.owner_connected for job in mine)
        assert not any(job.finished or checker.tasks[job.id].cancelling() for job in running)
        self.departed.update(job.id for job in mine)

    def check_counters(self) -> None:
        manager, accepted, checker = self.manager, self.accepted, self.checker
        unfinished = [job for job in accepted if not job.finished]
        assert manager.started == len(accepted)
        assert manager.active == len(unfinished)
        for uid in UIDS:
            assert manager.unfinished_for(uid) == sum(job.owner_uid == uid for job in unfinished)
        # The table as its listeners see it: started and not removed yet.
        table = [job_id for job_id in checker.started if not checker.removed[job_id]]
        assert table == sorted(table) and manager.idle() == (not table)
        assert set(table) == {job.id for job in accepted if not checker.removed[job.id]}
        assert all(checker.finished[job.id] == job.finished for job in accepted)
        assert all(job.owner_connected == (job.id not in self.departed) for job in accepted)
        assert all(checker.owner_left[job.id] == (job.id in self.departed) for job in accepted)

    async def check_end(self) -> None:
        checker = self.checker
        assert checker.problems == []
        assert all(job.finished and checker.finished[job.id] == 1 for job in self.accepted)
        with pytest.raises(ShuttingDown):
            self.manager.start(OWNERS[0], UIDS[0], 1, 0.0)
        outcomes = await asyncio.gather(*(task for _, task in self.waiters),
                                        return_exceptions=True)
        for (job, _), outcome in zip(self.waiters, outcomes, strict=True):
            if job.state == JobState.COMPLETED:
                assert outcome == job.number
            else:
                assert type(outcome) is job.error and str(outcome) == job.error_message
        await asyncio.wait_for(checker.until_removed(len(self.accepted)), 5)
        assert checker.problems == []
        assert self.manager.idle() and self.manager.active == 0
        self.check_counters()


@settings(max_examples=500, deadline=None)
@given(script=st.lists(operations, min_size=5, max_size=50), ttl=st.sampled_from(TTLS))
def test_every_accepted_job_finishes_exactly_once(script: list[tuple[Any, ...]],
                                                  ttl: float) -> None:
    # A sync test with a loop per example: an example that fails leaves no
    # tasks behind to disturb the next one hypothesis tries while shrinking.
    with quiet_jobs_log():
        asyncio.run(Scenario(ttl).play(script))
