"""The coalescing helper, on a clock the test turns by hand (no sleeps, no real timers)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

import pytest

from randomd.coalesce import Coalescer

INTERVAL = 0.1


class Handle:
    """A timer of ManualClock; cancel() as asyncio.TimerHandle has it."""

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A stand-in for the event loop's clock and timers, moved forward by advance()."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._timers: list[tuple[float, int, Handle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> Handle:
        handle = Handle(when, callback)
        heapq.heappush(self._timers, (when, next(self._order), handle))
        return handle

    def advance(self, seconds: float) -> None:
        """Move time on by *seconds*, running each timer that falls due, in order."""
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, handle = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not handle.cancelled:
                handle.callback()
        self.now = end

    def waiting(self) -> list[float]:
        return sorted(when for when, _, handle in self._timers if not handle.cancelled)


class Runs:
    """The callback: notes the clock's time at each run."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.times: list[float] = []

    def __call__(self) -> None:
        self.times.append(round(self.clock.now - 1000.0, 6))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def runs(clock: ManualClock) -> Runs:
    return Runs(clock)


def test_the_first_request_runs_at_once(clock: ManualClock, runs: Runs) -> None:
    Coalescer(INTERVAL, runs, clock=clock).request()
    assert runs.times == [0.0]


def test_a_request_within_the_interval_runs_once_at_its_end(
        clock: ManualClock, runs: Runs) -> None:
    coalescer = Coalescer(INTERVAL, runs, clock=clock)
    coalescer.request()
    clock.advance(0.03)
    coalescer.request()
    assert runs.times == [0.0] and coalescer.pending
    clock.advance(0.1)
    assert runs.times == [0.0, 0.1] and not coalescer.pending


def test_a_burst_of_requests_is_one_run(clock: ManualClock, runs: Runs) -> None:
    coalescer = Coalescer(INTERVAL, runs, clock=clock)
    coalescer.request()
    for _ in range(50):
        clock.advance(0.001)
        coalescer.request()
    clock.advance(1.0)
    assert runs.times == [0.0, 0.1]


def test_a_request_after_the_interval_runs_at_once(clock: ManualClock, runs: Runs) -> None:
    coalescer = Coalescer(INTERVAL, runs, clock=clock)
    coalescer.request()
    clock.advance(0.25)
    coalescer.request()
    assert runs.times == [0.0, 0.25]


def test_no_request_no_run(clock: ManualClock, runs: Runs) -> None:
    coalescer = Coalescer(INTERVAL, runs, clock=clock)
    coalescer.request()
    clock.advance(5.0)
    assert runs.times == [0.0] and clock.waiting() == []


def test_flush_runs_a_waiting_run_now(clock: ManualClock, runs: Runs) -> None:
    coalescer = Coalescer(INTERVAL, runs, clock=clock)
    coalescer.request()
    clock.advance(0.02)
    coalescer.request()
    coalescer.flush()
    clock.advance(1.0)
    assert runs.times == [0.0, 0.02]


def test_flush_without_a_waiting_run_does_nothing(clock: ManualClock, runs: Runs) -> None:
    coalescer = Coalescer(INTERVAL, runs, clock=clock)
    coalescer.request()
    coalescer.flush()
    assert runs.times == [0.0]


def test_cancel_drops_a_waiting_run(clock: ManualClock, runs: Runs) -> None:
    coalescer = Coalescer(INTERVAL, runs, clock=clock)
    coalescer.request()
    coalescer.request()
    coalescer.cancel()
    clock.advance(1.0)
    assert runs.times == [0.0] and not coalescer.pending


def test_a_waiting_run_goes_to_the_next_point_of_the_grid(
        clock: ManualClock, runs: Runs) -> None:
    coalescer = Coalescer(INTERVAL, runs, grid=0.02, clock=clock)
    clock.advance(0.005)
    coalescer.request()
    clock.advance(0.01)
    coalescer.request()  # due at 0.105, put off to 0.12
    clock.advance(1.0)
    assert runs.times == [0.005, 0.12]


def test_coalescers_on_one_grid_run_together(clock: ManualClock, runs: Runs) -> None:
    first = Coalescer(INTERVAL, runs, grid=0.02, clock=clock)
    second = Coalescer(INTERVAL, runs, grid=0.02, clock=clock)
    clock.advance(0.001)
    first.request()
    clock.advance(0.014)
    second.request()
    first.request()  # due at 0.101
    second.request()  # due at 0.115
    assert clock.waiting() == [pytest.approx(1000.12), pytest.approx(1000.12)]


def test_a_held_request_waits_until_the_hold_ends(clock: ManualClock, runs: Runs) -> None:
    held = [True]
    coalescer = Coalescer(INTERVAL, runs, hold=lambda: held[0], clock=clock)
    coalescer.request()
    assert runs.times == []
    clock.advance(0.25)  # still held: it tries again every interval
    assert runs.times == [] and coalescer.pending
    held[0] = False
    clock.advance(0.1)
    assert runs.times == [0.3]


def test_a_hold_puts_off_a_waiting_run_by_an_interval(clock: ManualClock, runs: Runs) -> None:
    held = [False]
    coalescer = Coalescer(INTERVAL, runs, hold=lambda: held[0], clock=clock)
    coalescer.request()
    coalescer.request()
    held[0] = True
    clock.advance(0.1)
    held[0] = False
    clock.advance(0.15)
    assert runs.times == [0.0, 0.2]


async def test_without_a_clock_it_uses_the_running_loop() -> None:
    done = asyncio.Event()
    coalescer = Coalescer(0.001, done.set)
    coalescer.request()
    first = done.is_set()
    done.clear()
    coalescer.request()
    second = done.is_set()
    await asyncio.wait_for(done.wait(), 5)
    assert [first, second, done.is_set()] == [True, False, True]
