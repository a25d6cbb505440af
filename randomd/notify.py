"""Talking to systemd: readiness, status, reloads, stopping and the watchdog.

Every call is a no-op when NOTIFY_SOCKET is unset (not started by systemd).
"""

from __future__ import annotations

import asyncio
import os
import time

from systemd import daemon


def _send(*fields: str) -> None:
    daemon.notify("\n".join(fields))


def ready(status: str) -> None:
    """The name is owned and calls are served."""
    _send("READY=1", f"STATUS={status}")


def status(text: str) -> None:
    """Update the one-line summary `systemctl status` shows."""
    _send(f"STATUS={text}")


def reloading() -> None:
    """A reload starts; ready() tells systemd it is over."""
    _send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")


def stopping(status: str) -> None:
    """Shutdown has begun."""
    _send("STOPPING=1", f"STATUS={status}")


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
