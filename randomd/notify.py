"""Talking to systemd: readiness, status, reloads, stopping and the watchdog.

Every call is a no-op when NOTIFY_SOCKET is unset (not started by systemd).
The datagrams are sent here rather than with systemd.daemon.notify(), whose
send blocks when the socket is full (systemd busy, or a test that does not
read): a STATUS= update may be dropped then, but the event loop never stops.
Only state changes (READY, RELOADING, STOPPING) wait, and briefly.

Status listens to the job core and to the settings: the STATUS= line
follows the job counters, and a reload is bracketed by RELOADING=1 and READY=1.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING

from .coalesce import Coalescer
from .jobs import Job, JobListener
from .settings import SettingsListener

if TYPE_CHECKING:
    from .jobs import JobManager
    from .settings import Settings

_STATE_CHANGE_TIMEOUT = 2.0
# At most one STATUS= per interval, however many jobs change.
STATUS_INTERVAL = 0.2


def _address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return None
    return "\0" + address[1:] if address[0] == "@" else address


def _send(*fields: str, wait: bool = False) -> bool:
    """Send one datagram; False when there is no socket or it was full."""
    address = _address()
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(_STATE_CHANGE_TIMEOUT if wait else 0)
        try:
            sock.sendto("\n".join(fields).encode(), address)
        except OSError:  # full (EAGAIN, timeout) or gone: systemd will notice
            return False
    return True


def ready(status: str) -> None:
    """The name is owned and calls are served."""
    _send("READY=1", f"STATUS={status}", wait=True)


def status(text: str) -> None:
    """Update the one-line summary `systemctl status` shows."""
    _send(f"STATUS={text}")


def reloading() -> None:
    """A reload starts; ready() tells systemd it is over."""
    _send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", wait=True)


def stopping(status: str) -> None:
    """Shutdown has begun."""
    _send("STOPPING=1", f"STATUS={status}", wait=True)


def watchdog_interval() -> float | None:
    """Half of WATCHDOG_USEC in seconds when the watchdog is meant for us, else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


async def keep_watchdog_fed(interval: float) -> None:
    """Ping the watchdog every *interval* seconds while the event loop runs.

    The pings come from the loop itself, so a stuck loop stops them and
    systemd restarts the daemon.
    """
    while True:
        _send("WATCHDOG=1")
        await asyncio.sleep(interval)


class Status(JobListener, SettingsListener):
    """The line `systemctl status` shows, kept up to date, and the reload protocol."""

    def __init__(self, jobs: JobManager, settings: Settings) -> None:
        self._jobs = jobs
        self._updates = Coalescer(STATUS_INTERVAL, self._send)
        jobs.subscribe(self)
        settings.subscribe(self)

    def text(self) -> str:
        """What the daemon is doing, in one line."""
        return f"Serving; {self._jobs.active} jobs running, {self._jobs.started} started."

    def job_started(self, job: Job) -> None:
        self._updates.request()

    def job_finished(self, job: Job) -> None:
        self._updates.request()

    def reloading(self) -> None:
        reloading()

    def reloaded(self) -> None:
        ready(self.text())

    def _send(self) -> None:
        status(self.text())
