"""The progress bar of a slow job, drawn on a terminal (standard error).

    [##########--------------]  5/12 bits  41%  0:01 elapsed  ETA 0:02
"""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import TextIO

from .output import duration

REDRAW_INTERVAL = 0.5  # seconds: elapsed and ETA move even when no bit comes
MAX_BAR = 24
MIN_BAR = 8


def render(bits_done: int, bits: int, elapsed: float, columns: int) -> str:
    """One line of progress, at most *columns* wide where possible."""
    bits_done = min(max(bits_done, 0), bits)
    percent = 100 * bits_done // bits if bits else 100
    if bits_done >= bits:
        tail = f" {bits_done}/{bits} bits  {percent}%  {duration(elapsed)} elapsed"
    else:
        eta = elapsed / bits_done * (bits - bits_done) if bits_done else None
        tail = (f" {bits_done}/{bits} bits  {percent}%  {duration(elapsed)} elapsed"
                f"  ETA {duration(eta)}")
    width = max(MIN_BAR, min(MAX_BAR, columns - len(tail) - 3))
    filled = width * bits_done // bits if bits else width
    return f"[{'#' * filled}{'-' * (width - filled)}]{tail}"


class ProgressBar:
    """A one-line bar redrawn in place with a carriage return."""

    def __init__(self, stream: TextIO, bits: int, created_us: int = 0) -> None:
        self._stream = stream
        self._bits = bits
        self._bits_done = 0
        now = time.monotonic()
        # Elapsed time counts from the job's creation when it is known.
        since = time.time() - created_us / 1e6 if created_us else 0.0
        self._start = now - max(0.0, since)
        self._ticker: asyncio.Task[None] | None = None
        self._done = False

    def start(self) -> None:
        """Draw now, then keep the clock moving."""
        self.draw()
        self._ticker = asyncio.ensure_future(self._tick())

    def update(self, bits_done: int) -> None:
        """A new BitsDone (never goes back: late answers may carry old values)."""
        if bits_done > self._bits_done:
            self._bits_done = bits_done
            self.draw()

    def draw(self) -> None:
        if self._done:
            return
        columns = shutil.get_terminal_size((80, 24)).columns
        line = render(self._bits_done, self._bits, time.monotonic() - self._start, columns - 1)
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()

    def finish(self, complete: bool = False) -> None:
        """Draw the last state (all bits when *complete*) and end the line, leaving the bar."""
        if self._done:
            return
        if complete:
            self._bits_done = self._bits
        self.draw()
        self._done = True
        if self._ticker is not None:
            self._ticker.cancel()
        self._stream.write("\n")
        self._stream.flush()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(REDRAW_INTERVAL)
            self.draw()
