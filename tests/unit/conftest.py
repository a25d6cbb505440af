"""What every unit test shares: a time limit on each async test."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

# No unit test comes near this; a hang fails here, at the await that hangs,
# instead of stalling the suite (pytest-timeout is not a dependency).
ASYNC_TEST_TIMEOUT = 10.0


def pytest_itemcollected(item: pytest.Item) -> None:
    # Called for the items of this folder only.  pytest-asyncio (any release)
    # runs item.obj when the test runs, so the test it runs is the bounded one.
    test = getattr(item, "obj", None)
    if inspect.iscoroutinefunction(test):
        item.obj = within(ASYNC_TEST_TIMEOUT, test)


def within(seconds: float, test: Callable[..., Coroutine[Any, Any, None]]
           ) -> Callable[..., Coroutine[Any, Any, None]]:
    """*test*, failing with TimeoutError if it runs longer than *seconds*."""
    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> None:
        limit = asyncio.timeout(seconds)
        try:
            async with limit:
                await test(*args, **kwargs)
        except TimeoutError as error:
            if limit.expired():  # not a TimeoutError of the test's own
                raise TimeoutError(f"the test ran longer than {seconds:g} s") from error
            raise
    return bounded
