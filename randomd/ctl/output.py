"""What randomctl prints: results as text or JSON on stdout, errors on stderr.

With --json, standard output carries exactly one JSON document per command
(one per line for monitor), errors included; standard error still gets the
one-line message, for people.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Sequence, TextIO

from . import exits

PROG = "randomctl"


class Output:
    """Where a command's results go."""

    def __init__(self, as_json: bool, stdout: TextIO | None = None,
                 stderr: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def result(self, data: Any, text: str | None) -> None:
        """Print *data* as JSON with --json, else *text* (None: nothing)."""
        if self.as_json:
            self.json_line(data)
        elif text is not None:
            print(text, file=self.stdout, flush=True)

    def json_line(self, data: Any) -> None:
        """One JSON document on one line of stdout."""
        print(json.dumps(data, separators=(", ", ": ")), file=self.stdout, flush=True)

    def note(self, message: str) -> None:
        """One line 'randomctl: message' on stderr."""
        note(message, self.stderr)

    def error(self, error: exits.CtlError) -> None:
        """Report *error*: one line on stderr, and its JSON on stdout with --json."""
        note(f"{error.message}", self.stderr)
        if self.as_json:
            self.json_line(error.as_json())


def note(message: str, stream: TextIO | None = None) -> None:
    """One line 'randomctl: message' on stderr."""
    print(f"{PROG}: {message}", file=stream or sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]],
          right: Sequence[bool]) -> str:
    """Columns padded to their widest cell; *right* aligns numbers to the right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = []
    for row in (headers, *rows):
        cells = [str(cell).rjust(width) if align else str(cell).ljust(width)
                 for cell, width, align in zip(row, widths, right)]
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
    """Microseconds since the epoch as local 'YYYY-MM-DD HH:MM:SS'; '' for 0."""
    if not microseconds:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(microseconds / 1e6))


def plural(count: int, word: str) -> str:
    """'1 job', '2 jobs'."""
    return f"{count} {word}{'' if count == 1 else 's'}"
