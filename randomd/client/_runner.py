"""The blocking client's event loop, and which thread runs it.

The client's own thread runs the loop whenever the connection has something
to follow (unfinished jobs, background calls) or other threads have handed it
work (calls, callbacks to register).  Then a blocking call costs two thread
switches: in, and back out with the reply.

When the client has nothing to follow, quick() and bytes() run the loop
themselves, in the calling thread, for the time of their call.  A thread
switch costs more CPU than Quick's reply takes to come (bench/, phase
"client"), so this keeps the blocking client close to a plain asyncio
program.  No callback of the user's runs then (there is no job), so
callbacks still run only in the client's own thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from . import _core
from .errors import Closed

T = TypeVar("T")


class Runner:
    """An asyncio loop for a blocking client: run by its own thread, or lent to a caller."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="randomd.client")
        self.conn: _core.Connection | None = None
        self._state = threading.Lock()
        # Two conditions, so that a call that ran here wakes nobody needlessly.
        self._thread_needed = threading.Condition(self._state)  # the client's thread waits
        self._lender_back = threading.Condition(self._state)  # threads wait for a lent loop
        # Who runs the loop: self.thread, a caller's thread, or None (nobody).
        self._driver: threading.Thread | None = self.thread
        self._handed = 0  # calls and callbacks handed to the loop, not done yet
        self._stopping = False
        self.thread.start()

    # -- the client's thread ---------------------------------------------------

    def _serve(self) -> None:
        while True:
            with self._state:
                while self._driver is not self.thread and not self._stopping:
                    self._thread_needed.wait()
                if self._stopping and self._driver is not self.thread:
                    return
            self.loop.call_soon(self.check_idle)
            self.loop.run_forever()
            with self._state:
                if self._stopping:
                    self._driver = None
                    return
                if not self._busy():
                    self._driver = None

    def _busy(self) -> bool:
        """Anything the loop must run for (with self._state held)."""
        return self._handed > 0 or (self.conn is not None and self.conn.watching())

    def check_idle(self) -> None:
        """In the loop: stop running it in the client's thread once there is nothing to do."""
        with self._state:
            if self._driver is self.thread and not self._busy():
                self.loop.stop()

    def _hand_to_thread(self) -> None:
        """Make the client's thread run the loop (with self._state held)."""
        if self._driver is None:
            self._driver = self.thread
            self._thread_needed.notify()

    # -- callers -----------------------------------------------------------------

    def _hand(self, func: Callable[[], Any]) -> None:
        """Have the client's thread run ``func()`` in the loop; the work counts until released."""
        with self._state:
            while self._driver not in (None, self.thread):  # lent to a caller for a moment
                self._lender_back.wait()
            if self._stopping:
                raise Closed("The randomd client is closed.")
            self._handed += 1
            self._hand_to_thread()
            self.loop.call_soon_threadsafe(func)

    def _release(self) -> None:
        """In the loop: work handed over is done."""
        with self._state:
            self._handed -= 1
        self.check_idle()

    def post(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` soon in the client's thread, in its loop."""
        def run() -> None:
            try:
                func(*args)
            finally:
                self._release()
        self._hand(run)

    def run(self, coro: Coroutine[Any, Any, T], *, here: bool = False) -> T:
        """Run *coro* in the loop and return its result; from any thread but the client's.

        *here*: a short call, which runs the loop in the calling thread when
        the client has nothing else to do (and the thread runs no loop).
        """
        if here and asyncio._get_running_loop() is None:
            with self._state:
                borrow = self._driver is None and not self._busy() and not self._stopping
                if borrow:
                    self._driver = threading.current_thread()
            if borrow:
                return self._run_here(coro)
        return self._run_there(coro)

    def _run_here(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.loop

        async def until_done() -> T:
            try:
                return await coro
            finally:
                # In the turn of the loop that ends the call, not one later as
                # run_until_complete() would: each turn is a system call.
                loop.stop()

        task = loop.create_task(until_done())
        try:
            loop.run_forever()
            return task.result()
        finally:
            with self._state:
                self._driver = None
                if not task.done():  # e.g. KeyboardInterrupt: the client's thread ends it
                    task.cancel()
                    self._hand_to_thread()
                elif self._busy():
                    self._hand_to_thread()
                self._lender_back.notify_all()

    def _run_there(self, coro: Coroutine[Any, Any, T]) -> T:
        # A lock rather than run_coroutine_threadsafe's future: two thread
        # switches either way, and this adds the least to them.
        done = threading.Lock()
        done.acquire()
        tasks: list[asyncio.Task[T]] = []

        def finished(_task: asyncio.Task[T]) -> None:
            self._release()
            done.release()

        def start() -> None:
            task = self.loop.create_task(coro)
            tasks.append(task)
            task.add_done_callback(finished)

        try:
            self._hand(start)
        except Closed:
            coro.close()
            raise
        try:
            done.acquire()
        except BaseException:  # e.g. KeyboardInterrupt: do not leave the call behind
            self.post(lambda: tasks and tasks[0].cancel())
            raise
        return tasks[0].result()

    def stop_from_loop(self) -> None:
        """In the loop (a callback closed the client): stop once this turn is done."""
        with self._state:
            self._stopping = True
        self.loop.call_soon(self.loop.stop)

    def stop(self) -> None:
        """Stop the client's thread and close the loop (not from the client's thread)."""
        with self._state:
            while self._driver not in (None, self.thread):  # lent to a caller for a moment
                self._lender_back.wait()
            self._stopping = True
            if self._driver is self.thread:
                self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread_needed.notify()
        self.thread.join()
        self.loop.close()

    @property
    def stopped(self) -> bool:
        return self._stopping
