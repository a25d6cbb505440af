"""Talking to systemd: readiness, status, reloads, stopping and the watchdog.

Every call is a no-op when NOTIFY_SOCKET is unset (not started by systemd).
The datagrams are sent here rather than with systemd.daemon.notify(), whose
send blocks when the socket is full (systemd busy, or a test that does not
read): a STATUS= update may be dropped then, but the event loop never stops.
Only state changes (READY, RELOADING, STOPPING) wait, and briefly.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

_STATE_CHANGE_TIMEOUT = 2.0


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
