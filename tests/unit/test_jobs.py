"""The job core, one behaviour per test, without a bus."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Any

import pytest

from randomd import jobs as jobs_module
from randomd.config import Config
from randomd.errors import Cancelled, Expired, Failed, InvalidArgument, QuotaExceeded, ShuttingDown
from randomd.jobs import Job, JobManager, JobState
from randomd.settings import Settings

# A job that never finishes by itself within a test.
FOREVER = 3600.0


class Recorder:
    """A JobListener that remembers every call and lets a test await one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, JobState, int]] = []
        self.raise_on: set[str] = set()
        self._waiters: list[tuple[str, int, asyncio.Future[None]]] = []

    def job_started(self, job: Job) -> None:
        self._record("started", job)

    def job_progress(self, job: Job) -> None:
        self._record("progress", job)

    def job_finished(self, job: Job) -> None:
        self._record("finished", job)

    def job_removed(self, job: Job) -> None:
        self._record("removed", job)

    def job_owner_left(self, job: Job) -> None:
        self._record("owner_left", job)

    def _record(self, event: str, job: Job) -> None:
        self.calls.append((event, job.id, job.state, job.bits_done))
        for waiter in self._waiters:
            if waiter[:2] == (event, job.id) and not waiter[2].done():
                waiter[2].set_result(None)
        if event in self.raise_on:
            raise RuntimeError(f"{event} is broken")

    def events(self, job: Job, event: str | None = None) -> list[str]:
        """The events seen for *job*, or the calls of one *event*."""
        return [call[0] for call in self.calls
                if call[1] == job.id and (event is None or call[0] == event)]

    def table(self) -> list[int]:
        """The ids of the jobs in the table as a listener sees it: started, not removed."""
        removed = {call[1] for call in self.calls if call[0] == "removed"}
        return [call[1] for call in self.calls if call[0] == "started" and call[1] not in removed]

    async def until(self, event: str, job: Job) -> None:
        """Return once *event* was called for *job* (maybe already)."""
        if event in self.events(job):
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((event, job.id, future))
        await future


@pytest.fixture
def events() -> Recorder:
    return Recorder()


def make_manager(events: Recorder, settings: Settings | None = None, **limits: Any) -> JobManager:
    config = dataclasses.replace(Config(), **limits)
    return JobManager(settings or Settings(Path("unused.conf"), config), [events])


@pytest.fixture
def manager(events: Recorder) -> JobManager:
    return make_manager(events)


@pytest.fixture
def fixed_bits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the bits a job draws the ones a test appends, in order."""
    bits: list[int] = []
    drawn = itertools.count()

    def random_integer(count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | bits[next(drawn)]
        return value

    monkeypatch.setattr(jobs_module, "random_integer", random_integer)
    return bits


def start(manager: JobManager, bits: int = 8, interval: float = 0.0, *,
          owner: str = ":1.1", uid: int = 1000) -> Job:
    return manager.start(owner, uid, bits, interval)


# Completing


async def test_job_completes_with_a_number_below_two_to_the_bits(manager: JobManager) -> None:
    job = start(manager, bits=16)
    number = await manager.wait(job)
    assert 0 <= number < 2**16
    assert (job.state, job.number, job.bits_done, job.progress) == (
        JobState.COMPLETED, number, 16, 1.0)
    assert (job.error, job.error_name, job.error_message) == (None, "", "")


async def test_number_is_built_most_significant_bit_first(
        manager: JobManager, fixed_bits: list[int]) -> None:
    fixed_bits.extend([1, 0, 0, 1, 1])
    assert await manager.wait(start(manager, bits=5)) == 0b10011


@pytest.fixture
def short_step(monkeypatch: pytest.MonkeyPatch) -> float:
    """A job wakes every 20 ms at most, instead of 0.1 s: tests that watch progress run faster."""
    monkeypatch.setattr(jobs_module, "PROGRESS_STEP", 0.02)
    return 0.02


def progress_of(events: Recorder, job: Job) -> list[int]:
    """BitsDone at each progress event of *job*."""
    return [call[3] for call in events.calls if call[0] == "progress" and call[1] == job.id]


async def test_progress_is_reported_after_each_bit_of_a_long_interval(
        manager: JobManager, events: Recorder, short_step: float) -> None:
    # Five wake-ups a bit: only a loop stalled for a whole interval could merge two.
    job = start(manager, bits=4, interval=short_step * 5)
    await manager.wait(job)
    # The last bit is told by the end of the job, with the rest of its state.
    assert progress_of(events, job) == [1, 2, 3]
    assert events.events(job) == ["started"] + ["progress"] * 3 + ["finished"]


async def test_short_intervals_draw_several_bits_per_wake_up(
        manager: JobManager, events: Recorder, short_step: float) -> None:
    job = start(manager, bits=40, interval=short_step / 4)
    await manager.wait(job)
    progress = progress_of(events, job)
    assert 0 < len(progress) <= 40 // 4
    assert progress == sorted(set(progress)) and progress[-1] < 40


async def test_bits_are_drawn_no_earlier_than_their_interval(
        manager: JobManager, events: Recorder, short_step: float) -> None:
    interval = short_step / 3
    loop = asyncio.get_running_loop()
    started = loop.time()
    seen: list[tuple[float, int]] = []
    events.job_progress = lambda job: seen.append((loop.time() - started, job.bits_done))
    job = start(manager, bits=30, interval=interval)
    await manager.wait(job)
    assert seen and all(done <= elapsed / interval for elapsed, done in seen)
    assert loop.time() - started >= 30 * interval


async def test_a_job_without_interval_completes_without_progress_events(
        manager: JobManager, events: Recorder) -> None:
    job = start(manager, bits=256, interval=0.0)
    assert 0 <= await manager.wait(job) < 2**256
    assert events.events(job) == ["started", "finished"]


async def test_ids_count_from_one(manager: JobManager, events: Recorder) -> None:
    assert [start(manager).id for _ in range(3)] == [1, 2, 3]
    assert events.table() == [1, 2, 3]
    await manager.shutdown()


async def test_created_and_finished_come_from_the_wall_clock(events: Recorder) -> None:
    times = iter([1_000_000, 2_500_000])
    manager = JobManager(Settings(Path("unused.conf"), Config()), [events],
                         clock=lambda: next(times))
    job = start(manager, bits=1)
    await manager.wait(job)
    assert (job.created_us, job.finished_us) == (1_000_000, 2_500_000)


async def test_counters_follow_started_and_unfinished_jobs(manager: JobManager) -> None:
    done = start(manager, bits=1, uid=1)
    running = start(manager, interval=FOREVER, uid=2)
    await manager.wait(done)
    assert (manager.started, manager.active) == (2, 1)
    assert (manager.unfinished_for(1), manager.unfinished_for(2)) == (0, 1)
    manager.cancel(running)
    await manager.shutdown()
    assert (manager.started, manager.active, manager.unfinished_for(2)) == (2, 0, 0)


# Cancelling


async def test_cancel_finishes_the_job_only_after_its_task_stopped(
        manager: JobManager, events: Recorder) -> None:
    before = asyncio.all_tasks()
    job = start(manager, interval=FOREVER)
    (task,) = asyncio.all_tasks() - before
    task_done_when_finished = []
    events.job_finished = lambda job: task_done_when_finished.append(task.done())  # type: ignore

    manager.cancel(job)
    assert job.state == JobState.RUNNING  # cancel() only asks
    with pytest.raises(Cancelled, match=r"^Job 1 was cancelled\.$"):
        await manager.wait(job)
    assert task_done_when_finished == [True]
    assert (job.state, job.error, job.number) == (JobState.CANCELLED, Cancelled, None)
    assert job.error_name == "org.randomd.Random1.Error.Cancelled"


async def test_cancel_of_a_finished_job_is_a_no_op(
        manager: JobManager, events: Recorder) -> None:
    job = start(manager, bits=4)
    number = await manager.wait(job)
    manager.cancel(job)
    assert (job.state, job.number) == (JobState.COMPLETED, number)
    assert events.events(job, "finished") == ["finished"]


async def test_cancel_all_cancels_every_unfinished_job(manager: JobManager) -> None:
    done = start(manager, bits=1)
    await manager.wait(done)
    running = [start(manager, interval=FOREVER) for _ in range(3)]
    assert manager.cancel_all() == 3
    for job in running:
        with pytest.raises(Cancelled):
            await manager.wait(job)
    assert done.state == JobState.COMPLETED


# Refusing


async def test_quota_per_user_names_the_limit(events: Recorder) -> None:
    manager = make_manager(events, max_jobs_per_user=2)
    start(manager, interval=FOREVER, uid=1000)
    start(manager, interval=FOREVER, uid=1000)
    with pytest.raises(QuotaExceeded, match=r"^You already have 2 unfinished jobs "
                                            r"\(MaxJobsPerUser\)\.$"):
        start(manager, uid=1000)
    start(manager, interval=FOREVER, uid=1001)  # someone else still may
    assert manager.started == 3
    await manager.shutdown()


async def test_global_quota_names_the_limit(events: Recorder) -> None:
    manager = make_manager(events, max_jobs=2)
    start(manager, interval=FOREVER, uid=1)
    start(manager, interval=FOREVER, uid=2)
    with pytest.raises(QuotaExceeded, match=r"^randomd already has 2 unfinished jobs "
                                            r"\(MaxJobs\)\.$"):
        start(manager, uid=3)
    await manager.shutdown()


async def test_quota_counts_only_unfinished_jobs(events: Recorder) -> None:
    manager = make_manager(events, max_jobs_per_user=1, max_jobs=1)
    await manager.wait(start(manager, bits=1))
    await manager.wait(start(manager, bits=1))
    assert len(events.table()) == 2  # both retained for ResultTTL


async def test_quota_follows_a_config_reload(events: Recorder, tmp_path: Path) -> None:
    settings = Settings(tmp_path / "randomd.conf", Config())
    manager = make_manager(events, settings)
    start(manager, interval=FOREVER)
    settings.path.write_text("MaxJobsPerUser = 1\n")
    settings.reload()
    with pytest.raises(QuotaExceeded, match=r"You already have 1 unfinished job \("):
        start(manager)
    await manager.shutdown()


@pytest.mark.parametrize("bits", [0, 257])
async def test_bits_outside_max_slow_bits_are_invalid(manager: JobManager, bits: int) -> None:
    with pytest.raises(InvalidArgument, match=rf"^bits must be between 1 and 256 "
                                              rf"\(MaxSlowBits\), not {bits}\.$"):
        start(manager, bits=bits)
    assert manager.started == 0


# Shutting down


async def test_start_after_shutdown_raises_shutting_down(manager: JobManager) -> None:
    await manager.shutdown()
    with pytest.raises(ShuttingDown, match=r"^randomd is shutting down\.$"):
        start(manager)


async def test_shutdown_fails_running_jobs_with_shutting_down(
        manager: JobManager, events: Recorder) -> None:
    running = [start(manager, interval=FOREVER) for _ in range(3)]
    await manager.shutdown()
    for job in running:
        assert (job.state, job.error) == (JobState.FAILED, ShuttingDown)
        assert events.events(job, "finished") == ["finished"]
        with pytest.raises(ShuttingDown, match=r"^randomd is shutting down\.$"):
            await manager.wait(job)
    assert manager.active == 0


# Lifetime


async def test_job_running_longer_than_job_timeout_expires(events: Recorder) -> None:
    manager = make_manager(events, job_timeout=0.01)
    job = start(manager, interval=FOREVER)
    with pytest.raises(Expired, match=r"^Job 1 ran longer than JobTimeout \(0\.01 s\)\.$"):
        await manager.wait(job)
    assert (job.state, job.error) == (JobState.EXPIRED, Expired)


async def test_finished_job_is_removed_after_result_ttl(events: Recorder) -> None:
    manager = make_manager(events, result_ttl=0.01)
    job = start(manager, bits=1)
    await events.until("finished", job)
    assert events.table() == [job.id]  # retained for pollers
    await events.until("removed", job)
    assert manager.idle()
    assert events.events(job) == ["started", "finished", "removed"]


async def test_result_ttl_zero_removes_right_after_finished(events: Recorder) -> None:
    manager = make_manager(events, result_ttl=0)
    job = start(manager, bits=1)
    await events.until("finished", job)
    assert events.events(job)[-2:] == ["finished", "removed"]
    assert manager.idle()


async def test_owner_gone_leaves_its_running_jobs_running(
        manager: JobManager, events: Recorder, short_step: float) -> None:
    job = start(manager, bits=256, interval=short_step, owner=":1.7")
    manager.owner_gone(":1.7")
    await events.until("progress", job)  # it goes on drawing bits
    assert (job.state, job.owner_connected) == (JobState.RUNNING, False)
    assert events.events(job)[:2] == ["started", "owner_left"]
    assert events.table() == [job.id] and manager.active == 1
    await manager.shutdown()


async def test_a_job_whose_owner_left_completes_and_can_be_waited_for(
        manager: JobManager, events: Recorder) -> None:
    job = start(manager, bits=4, interval=0.001, owner=":1.7")
    manager.owner_gone(":1.7")
    number = await manager.wait(job)
    assert job.state == JobState.COMPLETED and 0 <= number < 16
    assert events.events(job) == ["started", "owner_left", "finished"]
    assert events.table() == [job.id]  # kept for its ResultTTL, like anyone's


async def test_a_job_whose_owner_left_can_be_cancelled(manager: JobManager) -> None:
    job = start(manager, interval=FOREVER, owner=":1.7")
    manager.owner_gone(":1.7")
    manager.cancel(job)
    with pytest.raises(Cancelled):
        await manager.wait(job)
    assert job.state == JobState.CANCELLED


async def test_owner_gone_concerns_only_that_owners_jobs(
        manager: JobManager, events: Recorder) -> None:
    gone = start(manager, interval=FOREVER, owner=":1.7")
    other = start(manager, interval=FOREVER, owner=":1.8", uid=1000)
    manager.owner_gone(":1.7")
    assert (gone.owner_connected, other.owner_connected) == (False, True)
    assert events.events(other, "owner_left") == []
    await manager.shutdown()


async def test_owner_gone_is_told_once_per_job(manager: JobManager, events: Recorder) -> None:
    job = start(manager, interval=FOREVER, owner=":1.7")
    manager.owner_gone(":1.7")
    manager.owner_gone(":1.7")
    assert events.events(job, "owner_left") == ["owner_left"]
    await manager.shutdown()


async def test_owner_gone_keeps_its_finished_jobs_until_result_ttl(
        manager: JobManager, events: Recorder) -> None:
    job = start(manager, bits=1, owner=":1.7")
    await manager.wait(job)
    manager.owner_gone(":1.7")
    assert events.table() == [job.id] and not job.owner_connected
    assert events.events(job, "removed") == []


async def test_quota_counts_the_jobs_of_owners_that_left(events: Recorder) -> None:
    manager = make_manager(events, max_jobs_per_user=2)
    first = start(manager, interval=FOREVER, owner=":1.7")
    start(manager, interval=FOREVER, owner=":1.8")
    manager.owner_gone(":1.7")
    manager.owner_gone(":1.8")
    with pytest.raises(QuotaExceeded, match="MaxJobsPerUser"):
        start(manager, interval=FOREVER, owner=":1.9")
    manager.cancel(first)
    await events.until("finished", first)
    assert start(manager, interval=FOREVER, owner=":1.9").owner_connected
    await manager.shutdown()


async def test_job_timeout_ends_a_job_whose_owner_left(events: Recorder) -> None:
    manager = make_manager(events, job_timeout=0.01)
    job = start(manager, interval=FOREVER, owner=":1.7")
    manager.owner_gone(":1.7")
    with pytest.raises(Expired):
        await manager.wait(job)


# Waiting


async def test_wait_returns_the_number(manager: JobManager, fixed_bits: list[int]) -> None:
    fixed_bits.extend([1, 1, 0])
    assert await manager.wait(start(manager, bits=3)) == 6


async def test_wait_on_a_finished_job_returns_at_once(manager: JobManager) -> None:
    job = start(manager, bits=2)
    number = await manager.wait(job)
    await manager.shutdown()
    assert await manager.wait(job) == number


async def test_wait_raises_the_error_of_a_job_that_did_not_complete(
        manager: JobManager) -> None:
    job = start(manager, interval=FOREVER)
    waiter = asyncio.create_task(manager.wait(job))
    manager.cancel(job)
    with pytest.raises(Cancelled, match=r"^Job 1 was cancelled\.$"):
        await waiter


async def test_many_waiters_get_the_same_number(manager: JobManager) -> None:
    job = start(manager, bits=32)
    numbers = await asyncio.gather(*(manager.wait(job) for _ in range(100)))
    assert set(numbers) == {job.number}


# Failing


async def test_internal_error_fails_the_job_without_logging_the_number(
        manager: JobManager, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, short_step: float) -> None:
    drawn: list[int] = []

    def random_integer(bits: int) -> int:
        if drawn:
            raise OSError("getrandom failed")
        drawn.append((1 << bits) - 3)  # the number so far: in the log, it would show
        return drawn[-1]

    monkeypatch.setattr(jobs_module, "random_integer", random_integer)
    caplog.set_level(logging.DEBUG, logger="randomd.jobs")
    job = start(manager, bits=64, interval=short_step / 16)  # bits drawn over 3 wake-ups
    with pytest.raises(Failed, match=r"^Job 1 failed: internal error\.$"):
        await manager.wait(job)
    assert (job.state, job.error, job.number) == (JobState.FAILED, Failed, None)
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (record.name, record.getMessage()) == ("randomd.jobs", "Job 1 failed: internal error.")
    assert record.exc_info is not None and "getrandom failed" in caplog.text
    (partial,) = drawn
    assert str(partial) not in caplog.text and f"{partial:x}" not in caplog.text


async def test_progress_callback_that_raises_fails_the_job(
        manager: JobManager, events: Recorder, short_step: float) -> None:
    events.raise_on.add("progress")
    job = start(manager, bits=8, interval=short_step)
    with pytest.raises(Failed):
        await manager.wait(job)
    assert events.events(job) == ["started", "progress", "finished"]


async def test_started_callback_that_raises_fails_the_job(
        manager: JobManager, events: Recorder) -> None:
    events.raise_on.add("started")
    job = start(manager, bits=8)
    with pytest.raises(Failed):
        await manager.wait(job)
    assert events.events(job) == ["started", "finished"]


async def test_finished_callback_that_raises_does_not_break_the_manager(
        events: Recorder) -> None:
    manager = make_manager(events, result_ttl=0)
    events.raise_on.update({"finished", "removed"})
    job = start(manager, bits=1)
    assert await manager.wait(job) in (0, 1)
    assert manager.idle() and manager.active == 0
    events.raise_on.clear()
    assert await manager.wait(start(manager, bits=1)) in (0, 1)


# Secrets


async def test_job_repr_hides_the_number(manager: JobManager, fixed_bits: list[int]) -> None:
    fixed_bits.extend(int(bit) for bit in f"{0xDEADBEEFCAFEF00D:064b}")
    job = start(manager, bits=64)
    number = await manager.wait(job)
    assert number == 0xDEADBEEFCAFEF00D
    for text in (repr(job), str(job)):
        assert str(number) not in text and f"{number:x}" not in text.lower()
        assert "number" not in text
