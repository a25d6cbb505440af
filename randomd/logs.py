"""Logging to the journal (with structured fields) under systemd, else to stderr.

Callers pass structured fields as ``extra={"RANDOMD_SENDER": ..., "RANDOMD_UID": ...,
"RANDOMD_JOB": ...}``.  A generated number is never a field nor an argument.
"""

from __future__ import annotations

import logging
import os
import sys

# journald's level above INFO, below WARNING, which logging lacks.
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "notice": NOTICE,
          "warning": logging.WARNING, "error": logging.ERROR}
_JOURNAL_SOCKET = "/run/systemd/journal/socket"


def stderr_is_journal() -> bool:
    """True when systemd connected stderr to journald (JOURNAL_STREAM matches it)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in stream.split(":"))
        stat = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode) and os.path.exists(_JOURNAL_SOCKET)


def setup(level: str) -> None:
    """Send randomd's log to the journal or stderr, at *level*."""
    if stderr_is_journal():
        from systemd.journal import JournalHandler
        handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER="randomd")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("randomd: %(levelname)s: %(message)s"))
    root = logging.getLogger("randomd")
    root.handlers[:] = [handler]
    root.propagate = False
    set_level(level)


def set_level(level: str) -> None:
    """Change the level, as a reload does."""
    logging.getLogger("randomd").setLevel(LEVELS[level])
