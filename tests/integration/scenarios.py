"""The test's side of a scenario: a function of tests/integration/peers run as another user.

Scenario(address, library, func, *args) starts peers/run_scenario.py in a
subprocess as *user* (randomd-test unless told), which calls func(address,
*args) with randomd.client on *library*; the test reads the events it emits
on the way and its result (or error) as JSON.  The ``scenarios`` fixture of
conftest.py starts them and kills any left running.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import harness

SCENARIO_TIMEOUT = 60.0
# The randomd that the client library's tests run against (client_randomd).
CLIENT_INTERVAL = 0.02  # its SlowBitInterval
CLIENT_CONFIG = f"SlowBitInterval = {CLIENT_INTERVAL}\nMaxQuickBits = 2048\nMaxBytes = 4096\n"


class Scenario:
    """A scenario function run in a subprocess as *user*, on *library*."""

    def __init__(self, address: str, library: str, func: Callable[..., Any], *args: Any,
                 user: str | None = harness.TEST_USER, env: dict[str, str] | None = None) -> None:
        argv = [harness.PYTHON, "-m", "peers.run_scenario", func.__module__, func.__name__,
                address, json.dumps(args)]
        environment = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8",
                       "PYTHONPATH": f"{harness.REPO}:{harness.REPO / 'tests/integration'}",
                       "RANDOMD_BUS_LIBRARY": library, **(env or {})}
        self.process = subprocess.Popen(harness.as_user(user, argv), env=environment, cwd="/",
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.process.kill()
            raise AssertionError(f"the scenario said nothing in {timeout} s") from None
        if line is None:
            self.process.wait(harness.TIMEOUT)
            raise AssertionError(f"the scenario ended (status {self.process.returncode}) "
                                 f"without a result:\n{self.process.stderr.read()}")
        return json.loads(line)

    def event(self, timeout: float = harness.TIMEOUT) -> Any:
        """The next thing the scenario emitted."""
        message = self._next(timeout)
        assert "event" in message, message
        return message["event"]

    def send(self, text: str = "go") -> None:
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def outcome(self, timeout: float = SCENARIO_TIMEOUT) -> dict[str, Any]:
        """The scenario's {"result": ...} or {"error": ...}, once it has ended."""
        while True:
            message = self._next(timeout)
            if "event" not in message:
                break
        self.process.wait(harness.TIMEOUT)
        stderr = self.process.stderr.read()
        assert self.process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        return message

    def result(self, timeout: float = SCENARIO_TIMEOUT) -> Any:
        """The scenario's result; fails the test with its error if it raised one."""
        message = self.outcome(timeout)
        assert "result" in message, json.dumps(message)
        return message["result"]

    def error(self, timeout: float = SCENARIO_TIMEOUT) -> dict[str, Any]:
        """The error the scenario raised (fails the test if it returned)."""
        message = self.outcome(timeout)
        assert "error" in message, json.dumps(message)
        return message["error"]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(harness.TIMEOUT)
