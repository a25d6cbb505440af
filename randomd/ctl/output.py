"""What randomctl prints: results as text or JSON on stdout, errors on stderr.

With --json (short or pretty), standard output carries exactly one JSON
document per command (one per event for monitor), errors included; standard
error still gets the one-line message, for people.  Text follows systemd's
tools: tables with a header and a footer (--no-legend drops both), times as
`systemctl show` prints them, job states coloured on a terminal only.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from . import exits

PROG = "randomctl"
JSON_MODES = ("short", "pretty", "off")

# SGR colours of job states, as systemctl colours unit states.
_STATE_COLOURS = {"completed": "32", "failed": "31;1", "cancelled": "33", "expired": "33"}


class Output:
    """Where a command's results go, and in which form."""

    def __init__(self, json_mode: str = "off", stdout: TextIO | None = None,
                 stderr: TextIO | None = None, *, quiet: bool = False,
                 legend: bool = True) -> None:
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.quiet = quiet  # only the result: no notes, no progress
        self.legend = legend  # table headers and footers
        self.colour = not self.as_json and colours_wanted(self.stdout)

    @property
    def as_json(self) -> bool:
        """Whether results are JSON (--json=short or --json=pretty)."""
        return self.json_mode != "off"

    def result(self, data: Any, text: str | None) -> None:
        """Print *data* as JSON with --json, else *text* (None: nothing)."""
        if self.as_json:
            self.json_line(data)
        elif text is not None:
            print(text, file=self.stdout, flush=True)

    def json_line(self, data: Any) -> None:
        """One JSON document on stdout: one line, or indented with --json=pretty."""
        if self.json_mode == "pretty":
            text = json.dumps(data, indent=2)
        else:
            text = json.dumps(data, separators=(",", ":"))
        print(text, file=self.stdout, flush=True)

    def note(self, message: str) -> None:
        """One line 'randomctl: message' on stderr, unless --quiet."""
        if not self.quiet:
            note(message, self.stderr)

    def error(self, error: exits.CtlError) -> None:
        """Report *error*: one line on stderr, and its JSON on stdout with --json."""
        note(error.message, self.stderr)
        if self.as_json:
            self.json_line(error.as_json())

    def state(self, state: str) -> str:
        """A job state, coloured when colours are on (after padding, see table())."""
        code = _STATE_COLOURS.get(state.strip())
        return f"\x1b[{code}m{state}\x1b[0m" if self.colour and code else state


def colours_wanted(stream: TextIO) -> bool:
    """Colours as systemd decides them: TERM=dumb, then SYSTEMD_COLORS, then NO_COLOR,
    then whether *stream* is a terminal."""
    if os.environ.get("TERM") == "dumb":
        return False
    forced = os.environ.get("SYSTEMD_COLORS", "").lower()
    if forced in ("1", "yes", "y", "true", "t", "on", "16", "256", "24bit"):
        return True
    if forced in ("0", "no", "n", "false", "f", "off"):
        return False
    if "NO_COLOR" in os.environ:
        return False
    return stream.isatty()


def note(message: str, stream: TextIO | None = None) -> None:
    """One line 'randomctl: message' on stderr."""
    print(f"{PROG}: {message}", file=stream or sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool], *,
          legend: bool = True, paint: dict[int, Callable[[str], str]] | None = None) -> str:
    """Columns padded to their widest cell; *right* aligns numbers to the right.

    Without *legend* the header row is left out.  *paint* maps a column to a
    function that decorates its padded cells (colour codes take no width).
    """
    shown = [headers, *rows] if legend else list(rows)
    widths = [max(len(str(cell)) for cell in column) for column in zip(*shown, strict=True)]
    paint = paint or {}
    lines = []
    for index, row in enumerate(shown):
        cells = []
        for column, (cell, width, align) in enumerate(zip(row, widths, right, strict=True)):
            text = str(cell).rjust(width) if align else str(cell).ljust(width)
            if column in paint and (index or not legend):
                text = paint[column](text)
            cells.append(text)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def duration(seconds: float | None) -> str:
    """A duration as 4.2s under a minute, else M:SS or H:MM:SS; '?' when unknown."""
    if seconds is None or seconds < 0:
        return "?"
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def age(seconds: float) -> str:
    """A short age: 5s, 3min 12s, 2h 5min, 3d 4h."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}min {whole % 60}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60}min"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def timestamp(microseconds: int) -> str:
    """Microseconds since the epoch as systemctl show prints times,
    'Tue 2026-12-01 22:04:15 UTC' (local time); '' for 0."""
    if not microseconds:
        return ""
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(microseconds / 1e6))


def plural(count: int, word: str) -> str:
    """'1 job', '2 jobs'."""
    return f"{count} {word}{'' if count == 1 else 's'}"
