"""randomd.client, the blocking Python client, against randomd on the policy bus.

Every scenario runs in a subprocess as the unprivileged user randomd-test
(root only where the test says why), on the bus library of the ``library``
parameter, which randomd runs on too.  The bus enforces the shipped policy
and runs a real polkitd with the project's actions and no rules: with no
logind session, org.randomd.Random1.slow is granted, configure and
manage-jobs need an administrator's password nobody here can give.  So
randomd-test is refused those actions: a call that allows no prompt gets
InteractiveAuthorizationRequired, an interactive one AccessDenied.

A scenario is a function of this module (or of test_client_aio, ...) named
``scenario_*``; ``Scenario`` runs one (this file is its launcher when run as
a script), reads the events it emits on the way and its result as JSON.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import harness
import pytest

from randomd import __version__, api

# The bus of every test here runs a real polkitd (conftest: polkit_bus, polkitd).
pytestmark = pytest.mark.usefixtures("polkitd")

USER = harness.TEST_USER
INTERVAL = 0.02  # SlowBitInterval of this module's randomd
CONFIG = f"SlowBitInterval = {INTERVAL}\nMaxQuickBits = 2048\nMaxBytes = 4096\n"
SCENARIO_TIMEOUT = 60.0


# -- running scenarios as another user -----------------------------------------

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


def emit(event: Any) -> None:
    """In a scenario: tell the test something (it waits with Scenario.event)."""
    print(json.dumps({"event": event}), flush=True)


def proceed() -> str:
    """In a scenario: wait until the test says go on (Scenario.send)."""
    return sys.stdin.readline().strip()


class Scenario:
    """A scenario function run in a subprocess as *user*, on *library*."""

    def __init__(self, address: str, library: str, func: Callable[..., Any], *args: Any,
                 user: str | None = USER, env: dict[str, str] | None = None) -> None:
        argv = [harness.PYTHON, __file__, func.__module__, func.__name__, address,
                json.dumps(args)]
        environment = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8",
                       "PYTHONPATH": f"{harness.REPO}:{harness.REPO / 'tests'}",
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


@pytest.fixture
def scenarios():
    """Start scenarios; any still running at the end of the test is killed."""
    started: list[Scenario] = []

    def start(address: str, library: str, func, *args, **kwargs) -> Scenario:
        scenario = Scenario(address, library, func, *args, **kwargs)
        started.append(scenario)
        return scenario

    yield start
    for scenario in started:
        scenario.kill()


def _launch(argv: list[str]) -> None:
    """Run as a script: one scenario; its result (or error) as the last line of JSON."""
    module_name, func_name, address, args = argv
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        result = func(address, *json.loads(args))
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        message = {"result": result}
    except Exception as error:
        message = {"error": describe(error)}
    print(json.dumps(message), flush=True)


# -- fixtures -----------------------------------------------------------------



@pytest.fixture(scope="module")
def randomd(polkit_bus, library):
    daemon = harness.Randomd(polkit_bus, library, CONFIG).wait_ready()
    yield daemon
    daemon.stop()


@pytest.fixture
def run(polkit_bus, library, randomd, scenarios):
    """Run a scenario against this module's randomd to its end; its outcome."""
    def start(func, *args, user: str | None = USER) -> dict[str, Any]:
        return scenarios(polkit_bus.address, library, func, *args, user=user).outcome()
    return start


@pytest.fixture
def start(polkit_bus, library, randomd, scenarios):
    """Start a scenario against this module's randomd (to exchange events with it)."""
    def begin(func, *args, user: str | None = USER) -> Scenario:
        return scenarios(polkit_bus.address, library, func, *args, user=user)
    return begin



def job_state(bus: harness.SystemBus, path: str) -> str:
    return harness.managed_jobs(bus)[path]["State"]


# -- numbers and properties ---------------------------------------------------

def scenario_quick(address, bits):
    from randomd.client import Client
    with Client(address=address) as client:
        return [client.quick(bits) for _ in range(20)]


def test_quick_returns_numbers_below_two_to_the_bits(run):
    numbers = run(scenario_quick, 5)["result"]
    assert all(0 <= n < 32 for n in numbers) and len(set(numbers)) > 1


def test_quick_returns_large_numbers_as_int(run):
    numbers = run(scenario_quick, 2048)["result"]
    assert all(0 <= n < 2**2048 for n in numbers) and max(numbers) > 2**2000


def scenario_bytes(address, count):
    from randomd.client import Client
    with Client(address=address) as client:
        data = client.bytes(count)
        return [type(data).__name__, data.hex()]


def test_bytes_returns_count_random_bytes(run):
    kind, data = run(scenario_bytes, 4096)["result"]
    assert kind == "bytes" and len(bytes.fromhex(data)) == 4096 and len(set(data)) > 10


def scenario_refused_argument(address, member, value):
    from randomd.client import Client
    with Client(address=address) as client:
        return outcome(lambda: getattr(client, member)(value))


@pytest.mark.parametrize("member, value", [("quick", 2049), ("bytes", 4097), ("slow", 257)])
def test_argument_beyond_randomd_limit_is_invalid_argument(run, member, value):
    error = run(scenario_refused_argument, member, value)["result"]["error"]
    assert error["class"] == "InvalidArgument" and error["is_error"]
    assert error["dbus_name"] == "org.randomd.Random1.Error.InvalidArgument"
    assert str(value) in error["message"]


@pytest.mark.parametrize("member, value", [("quick", 0), ("bytes", 0), ("slow", 0),
                                           ("quick", -1), ("quick", 2**32), ("quick", "8"),
                                           ("slow", True)])
def test_argument_the_client_refuses_carries_the_api_error_name(run, member, value):
    error = run(scenario_refused_argument, member, value)["result"]["error"]
    assert error["class"] == "InvalidArgument"
    assert error["dbus_name"] == "org.randomd.Random1.Error.InvalidArgument"
    assert error["message"].endswith(".") and "\n" not in error["message"]


def scenario_properties(address):
    from randomd.client import Client, Limits
    with Client(address=address) as client:
        limits = client.limits
        assert isinstance(limits, Limits)
        return {"version": client.version, "limits": vars(limits),
                "interval": client.slow_bit_interval}


def test_version_limits_and_slow_bit_interval_are_read(run):
    result = run(scenario_properties)["result"]
    assert result["version"] == __version__
    assert result["limits"] == {"max_quick_bits": 2048, "max_bytes": 4096, "max_slow_bits": 256,
                                "max_jobs": 1024, "max_jobs_per_user": 64}
    assert result["interval"] == INTERVAL


def scenario_set_interval(address, seconds, interactive):
    from randomd.client import Client
    with Client(address=address, interactive=interactive) as client:
        def assign():
            client.slow_bit_interval = seconds
            return client.slow_bit_interval
        return outcome(assign)


def test_assigning_slow_bit_interval_writes_it(run):
    # As root, whom polkit never asks: nobody can authenticate randomd-test here.
    try:
        assert run(scenario_set_interval, 0.01, False, user=None)["result"] == {"result": 0.01}
    finally:
        run(scenario_set_interval, INTERVAL, False, user=None)


@pytest.mark.parametrize("interactive, required", [(False, True), (True, False)])
def test_assigning_slow_bit_interval_unauthorized_is_not_authorized(run, interactive, required):
    error = run(scenario_set_interval, 0.5, interactive)["result"]["error"]
    assert error["class"] == "NotAuthorized"
    assert error["interactive_required"] is required
    assert error["dbus_name"] == ("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
                                  if required else "org.freedesktop.DBus.Error.AccessDenied")


def scenario_admin(address, member, interactive):
    from randomd.client import Client
    with Client(address=address, interactive=interactive) as client:
        return outcome(getattr(client, member))


@pytest.mark.parametrize("member", ["cancel_all", "reload"])
@pytest.mark.parametrize("interactive, required", [(False, True), (True, False)])
def test_admin_calls_unauthorized_are_not_authorized(run, member, interactive, required):
    error = run(scenario_admin, member, interactive)["result"]["error"]
    assert error["class"] == "NotAuthorized" and error["interactive_required"] is required


def test_reload_as_root_returns_once_in_effect(run):
    # root, whom polkit never asks (configure needs a password nobody can type here).
    assert run(scenario_admin, "reload", False, user=None)["result"] == {"result": None}


def scenario_cancel_all_as_root(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(200)
        client.cancel_all()
        return outcome(lambda: job.value)


def test_cancel_all_cancels_every_running_job(run):
    # root: manage-jobs needs a password nobody can type here.
    assert run(scenario_cancel_all_as_root, user=None)["result"]["error"]["class"] == "Cancelled"


# -- jobs ------------------------------------------------------------------------

def scenario_slow(address, bits):
    from randomd.client import Client, Job, State
    with Client(address=address) as client:
        job = client.slow(bits)
        assert isinstance(job, Job)
        before = {"id": job.id, "path": job.path, "bits": job.bits, "ready": job.ready,
                  "state": job.state, "error": job.error, "expired": job.expired}
        value = job.value
        assert job.state is State.COMPLETED
        return {"before": before, "value": value, "state": job.state, "ready": job.ready,
                "error": job.error, "expired": job.expired, "bits_done": job.bits_done,
                "progress": job.progress}


def test_slow_job_gives_a_number_of_its_bits(run):
    result = run(scenario_slow, 12)["result"]
    before = result["before"]
    assert before["path"] == api.job_path(before["id"]) and before["bits"] == 12
    assert before["state"] == "running" and not before["ready"] and not before["error"]
    assert not before["expired"]
    assert 0 <= result["value"] < 2**12
    assert result["state"] == "completed" and result["ready"] and not result["error"]
    assert result["bits_done"] == 12 and result["progress"] == 1.0


def scenario_wait_and_result(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(256)  # about 5 s
        started = time.monotonic()
        waited = job.wait(0.2)
        after_wait = time.monotonic() - started
        timed_out = outcome(lambda: job.result(0.2))
        ready = job.ready
        job.cancel()
        return {"waited": waited, "after_wait": after_wait, "timed_out": timed_out,
                "ready": ready, "wait_after_cancel": job.wait(), "state": job.state}


def test_wait_and_result_with_a_timeout_leave_the_job_running(run):
    result = run(scenario_wait_and_result)["result"]
    assert result["waited"] is False and 0.2 <= result["after_wait"] < 2
    assert result["timed_out"]["error"]["class"] == "TimeoutError"
    assert result["ready"] is False
    assert result["wait_after_cancel"] is True and result["state"] == "cancelled"


def scenario_result(address):
    from randomd.client import Client
    with Client(address=address) as client:
        return client.slow(4).result(timeout=30)


def test_result_gives_the_number(run):
    assert 0 <= run(scenario_result)["result"] < 16


def scenario_callbacks(address, bits):
    from randomd.client import Client
    calls = []
    with Client(address=address) as client:
        job = client.slow(bits)
        done = threading.Event()

        def record(kind):
            def callback(j):
                calls.append([kind, threading.current_thread().name, j is job, j.ready,
                              j.bits_done])
                if kind == "late":
                    done.set()
            return callback

        job.on_progress(record("progress"))
        job.add_callback(record("early"))
        job.wait()
        job.add_callback(record("late"))  # at once: the job has ended
        done.wait(10)
        return {"calls": calls, "main": threading.current_thread().name}


def test_callbacks_run_once_in_the_clients_thread(run):
    result = run(scenario_callbacks, 16)["result"]
    ends = [call for call in result["calls"] if call[0] != "progress"]
    assert [call[0] for call in ends] == ["early", "late"]
    threads = {call[1] for call in result["calls"]}
    assert threads == {"randomd.client"} and result["main"] not in threads
    assert all(call[2] and call[3] for call in ends)


def test_on_progress_is_called_at_each_step_the_last_included(run):
    calls = run(scenario_callbacks, 40)["result"]["calls"]  # 0.8 s: several steps
    steps = [call[4] for call in calls if call[0] == "progress"]
    assert len(steps) >= 2 and steps == sorted(set(steps)) and steps[-1] == 40
    assert calls.index(next(c for c in calls if c[0] == "early")) > len(steps) - 1


def scenario_blocking_call_in_callback(address):
    from randomd.client import Client
    seen = []
    with Client(address=address) as client:
        job = client.slow(1)
        done = threading.Event()

        def callback(j):
            seen.append(outcome(lambda: client.quick(8)))
            other = client.slow  # a call that would wait for the client's own thread
            seen.append(outcome(lambda: other(1)))
            seen.append(outcome(lambda: j.value))  # ended: no wait, no error
            done.set()

        job.add_callback(callback)
        done.wait(10)
        return seen


def test_blocking_call_from_a_callback_raises_runtime_error(run):
    quick, slow, value = run(scenario_blocking_call_in_callback)["result"]
    assert quick["error"]["class"] == slow["error"]["class"] == "RuntimeError"
    assert "deadlock" in quick["error"]["message"]
    assert 0 <= value["result"] <= 1


def scenario_set_expiry(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(200)  # 4 s
        job.set_expiry(0.3)
        started = time.monotonic()
        waited = job.wait()
        return {"waited": waited, "after": time.monotonic() - started, "state": job.state,
                "expired": job.expired, "error": job.error, "path": job.path,
                "value": outcome(lambda: job.value),
                "daemon": {info.path: info.state for info in client.jobs()}}


def test_set_expiry_cancels_the_job_on_randomd(run, polkit_bus):
    result = run(scenario_set_expiry)["result"]
    assert result["waited"] and 0.3 <= result["after"] < 3
    assert result["state"] == "expired" and result["expired"] and result["error"]
    assert result["value"]["error"]["class"] == "Expired"
    assert result["value"]["error"]["dbus_name"] == "org.randomd.Random1.Error.Expired"
    assert result["daemon"][result["path"]] == "cancelled"


def scenario_set_expiry_after_end(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(2)
        job.set_expiry(0.5)
        value = job.value
        time.sleep(1)  # past the expiry: nothing may change (not a synchronisation)
        return {"value": value, "state": job.state, "expired": job.expired}


def test_set_expiry_of_a_job_that_ends_in_time_changes_nothing(run):
    result = run(scenario_set_expiry_after_end)["result"]
    assert result["state"] == "completed" and not result["expired"] and result["value"] < 4


def scenario_cancel(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(200)
        job.cancel()
        state, ready = job.state, job.ready
        job.cancel()  # a no-op for an ended job
        return {"state": state, "ready": ready, "value": outcome(lambda: job.value),
                "daemon": {info.path: info.state for info in client.jobs()}[job.path]}


def test_cancel_ends_the_job_cancelled_once_seen(run):
    result = run(scenario_cancel)["result"]
    assert result["state"] == "cancelled" and result["ready"]
    assert result["value"]["error"]["class"] == "Cancelled"
    assert result["value"]["error"]["dbus_name"] == "org.randomd.Random1.Error.Cancelled"
    assert result["daemon"] == "cancelled"


def scenario_quota(address, count):
    from randomd.client import Client
    with Client(address=address) as client:
        jobs = [client.slow(200) for _ in range(count)]
        refused = outcome(lambda: client.slow(200))
        for job in jobs:
            job.cancel()
        return refused


def test_slow_over_the_quota_is_quota_exceeded(run):
    error = run(scenario_quota, 64)["result"]["error"]
    assert error["class"] == "QuotaExceeded"
    assert error["dbus_name"] == "org.randomd.Random1.Error.QuotaExceeded"


def scenario_jobs(address):
    from datetime import datetime

    from randomd.client import Client, JobInfo
    with Client(address=address) as client:
        running = client.slow(200)
        done = client.slow(1)
        done.wait()
        infos = {info.path: info for info in client.jobs()}
        running.cancel()
        out = {}
        for job in (running, done):
            info = infos[job.path]
            assert isinstance(info, JobInfo) and isinstance(info.created, datetime)
            assert info.created.tzinfo is not None
            assert info.finished is None or info.finished.tzinfo is not None
            out[job.path] = {key: getattr(info, key) for key in (
                "id", "path", "bits", "bits_done", "progress", "state", "error", "owner_uid",
                "owner", "owner_connected")}
            out[job.path]["finished"] = info.finished is not None
            age = datetime.now(info.created.tzinfo) - info.created
            out[job.path]["age"] = age.total_seconds()
        return {"jobs": out, "running": running.path, "done": done.path,
                "sorted": [i.id for i in client.jobs()] == sorted(i.id for i in client.jobs())}


def test_jobs_lists_job_info_with_the_api_properties(run):
    result = run(scenario_jobs)["result"]
    uid = harness.ensure_user(USER).pw_uid
    running, done = result["jobs"][result["running"]], result["jobs"][result["done"]]
    assert running["state"] == "running" and not running["finished"]
    assert running["bits"] == 200 and running["error"] == "" and running["owner_uid"] == uid
    assert running["owner"].startswith(":") and running["owner_connected"] is True
    assert running["id"] == int(result["running"].rsplit("/", 1)[1])
    assert done["state"] == "completed" and done["finished"] and done["progress"] == 1.0
    assert done["bits_done"] == 1 and 0 <= running["age"] < 30
    assert result["sorted"]


def scenario_attach_own(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(4)
        same = [client.job(job.id) is job, client.job(str(job.id)) is job,
                client.job(job.path) is job]
        return {"same": same, "value": job.value}


def test_job_of_a_held_path_is_the_same_job(run):
    assert run(scenario_attach_own)["result"]["same"] == [True, True, True]


def scenario_unknown_job(address, ref):
    from randomd.client import Client
    with Client(address=address) as client:
        return outcome(lambda: client.job(ref))


def test_job_of_an_unknown_id_is_no_such_job(run):
    error = run(scenario_unknown_job, 99999)["result"]["error"]
    assert error["class"] == "NoSuchJob"
    assert error["dbus_name"] == "org.randomd.Random1.Error.NoSuchJob"


@pytest.mark.parametrize("ref", ["x", "/org/randomd/Random1/jobs/", 0, "/elsewhere/7"])
def test_job_of_a_malformed_id_is_invalid_argument(run, ref):
    assert run(scenario_unknown_job, ref)["result"]["error"]["class"] == "InvalidArgument"


def scenario_start_and_hold(address, bits):
    """Start a job, say its id, and keep the connection until told to collect it."""
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(bits)
        emit(job.id)
        proceed()
        return job.value


def scenario_start_and_leave(address, bits):
    """Start a job, say its id, and leave the bus at once (the job should run on)."""
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(bits)
    return job.id


def scenario_attach(address, job_id):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.job(job_id)
        steps = []
        job.on_progress(lambda j: steps.append(j.bits_done))
        value = outcome(lambda: job.value)
        return {"value": value, "state": job.state, "ready": job.ready, "steps": steps,
                "error": job.error}


def test_job_of_another_process_of_the_same_user_gives_its_number(start):
    starter = start(scenario_start_and_hold, 150)  # 3 s
    job_id = starter.event()
    attached = start(scenario_attach, job_id).result()
    starter.send()
    assert attached["value"]["result"] == starter.result()
    assert attached["state"] == "completed" and attached["steps"][-1] == 150


def test_job_of_a_process_that_left_gives_its_number(start):
    job_id = start(scenario_start_and_leave, 40).result()
    attached = start(scenario_attach, job_id).result()
    assert attached["state"] == "completed" and 0 <= attached["value"]["result"] < 2**40


def test_job_of_a_process_that_left_can_be_cancelled(start):
    job_id = start(scenario_start_and_leave, 200).result()
    assert start(scenario_attach_and_cancel, job_id).result() == "cancelled"


def scenario_attach_and_cancel(address, job_id):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.job(job_id)
        job.cancel()
        return job.state


def test_job_of_another_uid_follows_it_and_its_value_is_not_authorized(start):
    starter = start(scenario_start_and_hold, 30, user=None)  # root's job
    job_id = starter.event()
    attached = start(scenario_attach, job_id).result()
    starter.send()
    starter.result()
    assert attached["ready"] and attached["state"] == "completed" and attached["error"]
    error = attached["value"]["error"]
    assert error["class"] == "NotAuthorized" and error["interactive_required"] is True


def scenario_close_while_waiting(address):
    from randomd.client import Client
    client = Client(address=address)
    job = client.slow(200)
    waiting = []
    waiter = threading.Thread(target=lambda: waiting.append(outcome(lambda: job.value)))
    waiter.start()
    # So that the waiter is (very likely) inside value; either way it must end Closed.
    time.sleep(0.2)
    client.close()
    waiter.join(10)
    return {"waiter": waiting, "after": outcome(lambda: job.wait()),
            "call": outcome(lambda: client.quick(8)), "ready": job.ready,
            "state": job.state, "closed": client.closed}


def test_close_makes_waiters_and_calls_raise_closed(run):
    result = run(scenario_close_while_waiting)["result"]
    assert [w["error"]["class"] for w in result["waiter"]] == ["Closed"]
    assert result["after"]["error"]["class"] == "Closed"
    assert result["call"]["error"]["class"] == "Closed"
    assert result["ready"] is False and result["state"] == "running" and result["closed"]


def scenario_threads(address, threads, calls):
    from randomd.client import Client
    results: list[Any] = []
    with Client(address=address) as client:
        def work():
            numbers = [client.quick(16) for _ in range(calls)]
            job = client.slow(8)
            results.append({"numbers": numbers, "value": job.value, "bytes": len(client.bytes(8))})

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
    return results


def test_one_client_is_shared_by_eight_threads(run):
    results = run(scenario_threads, 8, 50)["result"]
    assert len(results) == 8
    for result in results:
        assert len(result["numbers"]) == 50 and all(0 <= n < 2**16 for n in result["numbers"])
        assert 0 <= result["value"] < 256 and result["bytes"] == 8


def scenario_forged_finished(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(100)  # 2 s
        emit({"path": job.path, "unique_name": client._conn.bus.unique_name})
        proceed()  # the test has sent a Finished of its own
        client.quick(1)  # a round trip: what the bus had for us is read by now
        forged = job.ready
        return {"forged_ended_it": forged, "value": job.value, "state": job.state}


def test_only_signals_from_randomd_count(start, polkit_bus):
    scenario = start(scenario_forged_finished)
    seen = scenario.event()
    asyncio.run(forge_finished(polkit_bus.address, seen["unique_name"], seen["path"]))
    scenario.send()
    result = scenario.result()
    assert result["forged_ended_it"] is False
    assert result["state"] == "completed" and result["value"] != 12345


async def forge_finished(address: str, destination: str, path: str) -> None:
    """Send a Finished of our own to *destination*; return once the bus has routed it."""
    from randomd import dbus
    connection = await dbus.connect(address)
    try:
        connection.send(dbus.Message(
            message_type=dbus.MessageType.SIGNAL, destination=destination, path=path,
            interface=api.JOB_INTERFACE, member="Finished", signature="sss",
            body=["completed", "12345", ""]))
        # The bus handles one connection's messages in order: once it answers
        # GetId, it has queued the signal for the client.
        await connection.call(dbus.Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="GetId"))
    finally:
        connection.disconnect()


if __name__ == "__main__":
    _launch(sys.argv[1:])
