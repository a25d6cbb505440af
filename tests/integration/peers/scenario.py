"""What scenarios share: how they report outcomes and talk to the test.

A scenario is a function ``(address, *args)`` of a module in this folder,
returning something JSON can carry (or a coroutine giving it); run_scenario.py
runs one as another user, and tests/integration/scenarios.py is the test's
side.  On the way a scenario may emit() events and wait to proceed() when
the test says so.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any


def describe(error: BaseException) -> dict[str, Any]:
    """An exception as JSON: its class, D-Bus name and sentence."""
    return {"class": type(error).__name__, "dbus_name": getattr(error, "dbus_name", None),
            "message": str(error),
            "interactive_required": getattr(error, "interactive_required", None),
            "is_error": _is_client_error(error)}


def _is_client_error(error: BaseException) -> bool:
    from randomd.client import Error
    return isinstance(error, Error)


def outcome(func: Callable[[], Any]) -> dict[str, Any]:
    """What calling *func* gives: {"result": value} or {"error": describe(exception)}."""
    try:
        return {"result": func()}
    except Exception as error:
        return {"error": describe(error)}


async def async_outcome(awaitable) -> dict[str, Any]:
    try:
        return {"result": await awaitable}
    except (Exception, asyncio.CancelledError) as error:
        return {"error": describe(error)}


async def tasks_awaiting(awaitables: list[Any], timeout: float = 10.0) -> list[asyncio.Task]:
    """A task awaiting each of *awaitables*, returned once every one of them awaits it."""
    async def run(awaitable: Any, started: asyncio.Event) -> Any:
        started.set()
        return await awaitable  # in the same step: awaiting once its event is set

    events = [asyncio.Event() for _ in awaitables]
    tasks = [asyncio.create_task(run(a, e)) for a, e in zip(awaitables, events, strict=True)]
    async with asyncio.timeout(timeout):
        for event in events:
            await event.wait()
    return tasks


def emit(event: Any) -> None:
    """Tell the test something (it waits with Scenario.event)."""
    print(json.dumps({"event": event}), flush=True)


def proceed() -> str:
    """Wait until the test says go on (Scenario.send)."""
    return sys.stdin.readline().strip()
