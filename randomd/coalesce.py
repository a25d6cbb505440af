"""Coalescing: run a callback at most once per interval, however often it is asked for.

randomd announces counters, progress and its systemd status this way: a
burst of changes becomes one announcement with the latest values, at once
when the last one is older than the interval, else once at the end of it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """What a Coalescer needs of the event loop (tests give it a clock of their own)."""

    def time(self) -> float: ...
    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle: ...


class Coalescer:
    """Runs *callback* at once if its last run is older than *interval*, else once at the end of it.

    *grid*: a run that has to wait is put off to the next multiple of *grid*
    seconds, so that many coalescers waiting at once run in the same turn of
    the loop (their messages leave in one write).  *hold*: while it returns
    True, a due run waits another *interval* (the bus does not keep up).
    """

    def __init__(self, interval: float, callback: Callable[[], None], *, grid: float = 0.0,
                 hold: Callable[[], bool] | None = None, clock: Clock | None = None) -> None:
        self._interval = interval
        self._callback = callback
        self._grid = grid
        self._hold = hold
        self._clock = clock
        self._last = -math.inf  # loop time of the last run
        self._timer: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        """Whether a run is waiting for its time."""
        return self._timer is not None

    def request(self) -> None:
        """Ask for a run: now, or at the end of the interval (once for all requests until then)."""
        if self._timer is not None:
            return
        now = self._time()
        due = self._last + self._interval
        if now >= due and not self._held():
            self._run(now)
        else:
            self._schedule(max(due, now))

    def flush(self) -> None:
        """Run a waiting run now (before the daemon leaves the bus)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._run(self._time())

    def cancel(self) -> None:
        """Drop a waiting run (what it would announce is told otherwise)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _time(self) -> float:
        if self._clock is None:
            self._clock = asyncio.get_running_loop()
        return self._clock.time()

    def _held(self) -> bool:
        return self._hold is not None and self._hold()

    def _schedule(self, when: float) -> None:
        if self._grid > 0:
            when = math.ceil(when / self._grid) * self._grid
        assert self._clock is not None  # set by _time()
        self._timer = self._clock.call_at(when, self._on_time)

    def _on_time(self) -> None:
        self._timer = None
        now = self._time()
        if self._held():
            self._schedule(now + self._interval)
        else:
            self._run(now)

    def _run(self, now: float) -> None:
        self._last = now
        self._callback()
