"""The progress bar of a slow job, drawn on a terminal (standard error).

    [########################]  5/12 bits  41%  1.2s elapsed  ETA 1.7s

The line never wraps: as the terminal narrows, the ETA goes first, then the
elapsed time, then the bar shrinks; it is redrawn in place when the
terminal is resized (SIGWINCH).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from typing import TextIO

from .output import duration

REDRAW_INTERVAL = 0.5  # seconds: elapsed and ETA move even when no bit comes
MAX_BAR = 24


def render(bits_done: int, bits: int, elapsed: float, columns: int) -> str:
    """One line of progress, never wider than *columns*.

    The fields leave in the order of their worth to someone watching: the
    ETA, then the elapsed time; only then does the bar get shorter than
    MAX_BAR, and below a one-character bar the counts are cut.
    """
    bits_done = min(max(bits_done, 0), bits)
    percent = 100 * bits_done // bits if bits else 100
    counts = f" {bits_done}/{bits} bits  {percent}%"
    timing = f"  {duration(elapsed)} elapsed"
    eta = ""
    if bits_done < bits:
        eta = f"  ETA {duration(elapsed / bits_done * (bits - bits_done) if bits_done else None)}"
    for tail in (counts + timing + eta, counts + timing):
        if len(tail) + MAX_BAR + 2 <= columns:
            return _bar(bits_done, bits, MAX_BAR) + tail
    width = min(MAX_BAR, columns - len(counts) - 2)
    if width >= 1:
        return _bar(bits_done, bits, width) + counts
    return counts.strip()[:max(columns, 0)]


def _bar(bits_done: int, bits: int, width: int) -> str:
    filled = width * bits_done // bits if bits else width
    return f"[{'#' * filled}{'-' * (width - filled)}]"


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
        """Draw now, then keep the clock moving and follow the terminal's width."""
        self.draw()
        self._ticker = asyncio.ensure_future(self._tick())
        asyncio.get_running_loop().add_signal_handler(signal.SIGWINCH, self.draw)

    def update(self, bits_done: int) -> None:
        """A new BitsDone (never goes back: late answers may carry old values)."""
        if bits_done > self._bits_done:
            self._bits_done = bits_done
            self.draw()

    def draw(self) -> None:
        """Redraw the line for the terminal's current width."""
        if self._done:
            return
        # One column less than the terminal's: a line that fills the last
        # column makes some terminals wrap before the carriage return.
        columns = shutil.get_terminal_size((80, 24)).columns - 1
        line = render(self._bits_done, self._bits, time.monotonic() - self._start, columns)
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
            asyncio.get_running_loop().remove_signal_handler(signal.SIGWINCH)
        self._stream.write("\n")
        self._stream.flush()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(REDRAW_INTERVAL)
            self.draw()
