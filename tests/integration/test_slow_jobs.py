"""Slow jobs on the bus: objects, progress, the private Finished signal, Wait, Cancel,
quotas, expiry, jobs whose owner left, shutdown and idle exit
(tests/integration/test_job_lifetime.py has more on the lifetime of jobs).

Clients are root connections in this process (dbus-fast), busctl, and a
dbus-python bystander under another uid.  polkit is not running here, so
job-starting clients are root; tests/integration/test_polkit.py covers others.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import harness
import pytest
from clients import SignalRecorder, add_match, call, error_of, get_property, wait_until

from randomd import api, dbus

FAST = "SlowBitInterval = 0.0\n"
# A bit a minute: a job runs on for as long as a test looks at it.
LASTING = "SlowBitInterval = 60\n"
ERROR = api.ERROR_PREFIX


async def slow(bus, bits: int) -> str:
    (path,) = await call(bus, "Slow", "u", [bits])
    return path


async def job_call(bus, path: str, member: str) -> list:
    return await call(bus, member, path=path, interface=api.JOB_INTERFACE)


def finished_of(path: str):
    return lambda m: m.path == path and m.member == "Finished"


async def managed_paths(bus) -> list[str]:
    (objects,) = await call(bus, "GetManagedObjects",
                            interface="org.freedesktop.DBus.ObjectManager")
    return sorted(objects)


@pytest.fixture
async def daemon_and_bus(start_randomd):
    """`daemon, bus = await daemon_and_bus(config_text)`: randomd started with that
    config (by start_randomd) and ready, and a root client of it."""
    clients = []

    async def start(config: str):
        daemon = start_randomd(config).wait_ready()
        clients.append(await dbus.connect(daemon.bus.address))
        return daemon, clients[-1]

    yield start
    for bus in clients:
        bus.disconnect()


# -- objects and properties --------------------------------------------------

async def test_slow_returns_a_job_path_with_its_properties(daemon_and_bus):
    _, bus = await daemon_and_bus(LASTING)
    path = await slow(bus, 8)
    assert path == api.job_path(1)
    (props,) = await call(bus, "GetAll", "s", [api.JOB_INTERFACE], path=path,
                          interface="org.freedesktop.DBus.Properties")
    values = {name: variant.value for name, variant in props.items()}
    assert values["Id"] == "1" and values["Bits"] == 8 and values["State"] == "running"
    assert values["BitsDone"] == 0 and values["Progress"] == 0.0 and values["Error"] == ""
    assert values["OwnerUID"] == 0 and values["Owner"] == bus.unique_name
    assert values["OwnerConnected"] is True
    assert values["Created"] > 0 and values["Finished"] == 0


async def test_a_new_job_is_announced_by_the_manager(daemon_and_bus):
    _, bus = await daemon_and_bus(LASTING)
    recorder = SignalRecorder(bus)
    await add_match(bus, "type='signal',interface='org.freedesktop.DBus.ObjectManager'")
    path = await slow(bus, 4)
    added = await recorder.wait_for(lambda m: m.member == "InterfacesAdded")
    assert added.path == api.MANAGER_PATH and added.body[0] == path
    assert added.body[1][api.JOB_INTERFACE]["Bits"].value == 4


async def test_a_removed_job_is_announced_by_the_manager(daemon_and_bus):
    _, bus = await daemon_and_bus("SlowBitInterval = 0\nResultTTL = 0\n")
    recorder = SignalRecorder(bus)
    await add_match(bus, "type='signal',interface='org.freedesktop.DBus.ObjectManager'")
    path = await slow(bus, 4)
    removed = await recorder.wait_for(lambda m: m.member == "InterfacesRemoved")
    assert (removed.path, removed.body) == (api.MANAGER_PATH, [path, [api.JOB_INTERFACE]])


async def test_progress_is_announced_and_coalesced(daemon_and_bus):
    _, bus = await daemon_and_bus("SlowBitInterval = 0.01\n")
    recorder = SignalRecorder(bus)
    await add_match(bus, f"type='signal',member='PropertiesChanged',path='{api.job_path(1)}'")
    path = await slow(bus, 60)  # about 0.6 s: at most about 6 progress updates
    await recorder.wait_for(finished_of(path))
    updates = [m.body[1] for m in recorder.signals
               if m.member == "PropertiesChanged" and m.path == path]
    progress = [u["Progress"].value for u in updates if "Progress" in u]
    assert progress[-1] == 1.0 and progress == sorted(progress)
    assert 2 <= len(progress) <= 12
    assert updates[-1]["State"].value == "completed"


async def test_active_jobs_and_jobs_started_are_announced(daemon_and_bus):
    _, bus = await daemon_and_bus(LASTING)
    recorder = SignalRecorder(bus)
    await add_match(bus, f"type='signal',member='PropertiesChanged',path='{api.MANAGER_PATH}'")
    await slow(bus, 4)
    changed = await recorder.wait_for(lambda m: m.member == "PropertiesChanged"
                                      and "ActiveJobs" in m.body[1])
    assert changed.body[1]["ActiveJobs"].value == 1 and changed.body[1]["JobsStarted"].value == 1


async def test_status_says_how_many_jobs_run(daemon_and_bus):
    daemon, bus = await daemon_and_bus(LASTING)
    await slow(bus, 4)
    await slow(bus, 4)
    daemon.notify.wait_for("STATUS", "Serving; 2 jobs running, 2 started.")


# -- Finished is private -------------------------------------------------------

async def test_the_owner_receives_finished_with_the_number(daemon_and_bus):
    _, bus = await daemon_and_bus(FAST)
    recorder = SignalRecorder(bus)
    path = await slow(bus, 16)
    finished = await recorder.wait_for(finished_of(path))
    state, number, error = finished.body
    assert (state, error) == ("completed", "") and 0 <= int(number) < 2**16
    assert finished.destination == bus.unique_name


async def test_a_bystander_with_a_broad_match_never_sees_the_number(daemon_and_bus):
    daemon, bus = await daemon_and_bus("SlowBitInterval = 0.2\n")
    bystander = subprocess.Popen(
        harness.as_user(harness.TEST_USER, [
            harness.PYTHON, str(harness.REPO / "tests/integration/peers/eavesdropper.py"),
            daemon.bus.address, api.job_path(1)]),
        stdout=subprocess.PIPE, text=True)
    assert json.loads(bystander.stdout.readline())["member"] == "listening"
    recorder = SignalRecorder(bus)
    path = await slow(bus, 64)
    number = (await recorder.wait_for(finished_of(path), timeout=30)).body[1]
    seen = [json.loads(line) for line in bystander.stdout]
    assert bystander.wait(harness.TIMEOUT) == 0
    members = {s["member"] for s in seen}
    assert {"InterfacesAdded", "PropertiesChanged"} <= members and "Finished" not in members
    assert not any(number in arg for s in seen for arg in s.get("args", []))


# -- Wait ------------------------------------------------------------------------

async def test_wait_on_a_finished_job_answers_at_once(daemon_and_bus):
    _, bus = await daemon_and_bus(FAST)
    recorder = SignalRecorder(bus)
    path = await slow(bus, 12)
    number = (await recorder.wait_for(finished_of(path))).body[1]
    assert await job_call(bus, path, "Wait") == [number]


async def test_wait_replies_when_the_job_ends(daemon_and_bus):
    _, bus = await daemon_and_bus("SlowBitInterval = 0.05\n")
    recorder = SignalRecorder(bus)
    path = await slow(bus, 10)
    (number,) = await job_call(bus, path, "Wait")
    assert number == (await recorder.wait_for(finished_of(path))).body[1]


async def test_wait_works_from_busctl(daemon_and_bus):
    daemon, bus = await daemon_and_bus("SlowBitInterval = 0.05\n")
    path = await slow(bus, 8)
    waited = await asyncio.to_thread(harness.busctl, daemon.bus, "call", api.BUS_NAME, path,
                                     api.JOB_INTERFACE, "Wait")
    assert waited.stdout.startswith('s "'), waited.stderr


async def test_five_hundred_waiters_on_five_hundred_jobs_are_served(daemon_and_bus):
    daemon, _ = await daemon_and_bus("SlowBitInterval = 0.05\nMaxJobsPerUser = 500\n")
    # dbus-daemon allows 128 pending calls per connection: five clients.
    clients = [await dbus.connect(daemon.bus.address) for _ in range(5)]
    paths = [[await slow(c, 8) for _ in range(100)] for c in clients]
    waits = [job_call(c, p, "Wait") for c, ps in zip(clients, paths, strict=True)
             for p in ps]
    results = await asyncio.wait_for(asyncio.gather(*waits), 60)
    assert len(results) == 500 and all(int(n) < 256 for (n,) in results)
    assert await call(clients[0], "Quick", "u", [8])  # and nothing was blocked
    for client in clients:
        client.disconnect()


async def test_wait_on_a_cancelled_job_answers_cancelled(daemon_and_bus):
    _, bus = await daemon_and_bus(LASTING)
    path = await slow(bus, 8)
    waiting = asyncio.ensure_future(job_call(bus, path, "Wait"))
    await job_call(bus, path, "Cancel")
    error = await error_of(waiting)
    assert error.type == ERROR + "Cancelled"


async def test_a_job_running_longer_than_job_timeout_expires(daemon_and_bus):
    _, bus = await daemon_and_bus(LASTING + "JobTimeout = 0.2\n")
    recorder = SignalRecorder(bus)
    path = await slow(bus, 8)
    error = await error_of(job_call(bus, path, "Wait"))
    assert error.type == ERROR + "Expired" and "JobTimeout" in error.text
    finished = await recorder.wait_for(finished_of(path))
    assert finished.body == ["expired", "", ERROR + "Expired"]


async def test_wait_on_an_unknown_job_is_no_such_job(daemon_and_bus):
    _, bus = await daemon_and_bus(FAST)
    error = await error_of(job_call(bus, api.job_path(99), "Wait"))
    assert error.type == ERROR + "NoSuchJob" and "99" in error.text


# -- Cancel ----------------------------------------------------------------------

async def test_cancel_is_followed_by_finished_cancelled(daemon_and_bus):
    _, bus = await daemon_and_bus(LASTING)
    recorder = SignalRecorder(bus)
    path = await slow(bus, 8)
    assert await job_call(bus, path, "Cancel") == []
    finished = await recorder.wait_for(finished_of(path))
    assert finished.body == ["cancelled", "", ERROR + "Cancelled"]
    assert await get_property(bus, "State", api.JOB_INTERFACE, path) == "cancelled"


async def test_cancelling_a_finished_job_changes_nothing(daemon_and_bus):
    _, bus = await daemon_and_bus(FAST)
    recorder = SignalRecorder(bus)
    path = await slow(bus, 4)
    await recorder.wait_for(finished_of(path))
    await job_call(bus, path, "Cancel")
    assert await get_property(bus, "State", api.JOB_INTERFACE, path) == "completed"
    assert len([m for m in recorder.signals if m.member == "Finished"]) == 1


async def test_cancel_all_cancels_every_unfinished_job(daemon_and_bus):
    _, bus = await daemon_and_bus(LASTING)
    recorder = SignalRecorder(bus)
    paths = [await slow(bus, 8) for _ in range(3)]
    await call(bus, "CancelAll")
    for path in paths:
        assert (await recorder.wait_for(finished_of(path))).body[0] == "cancelled"
    assert await get_property(bus, "ActiveJobs") == 0


# -- limits and quotas -------------------------------------------------------------

@pytest.mark.parametrize("bits", [0, 257, 2**32 - 1])
async def test_slow_refuses_bits_outside_the_limit(daemon_and_bus, bits):
    _, bus = await daemon_and_bus(FAST)
    error = await error_of(slow(bus, bits))
    assert error.type == ERROR + "InvalidArgument" and "MaxSlowBits" in error.text


async def test_the_per_user_quota_names_its_limit(daemon_and_bus):
    _, bus = await daemon_and_bus(LASTING + "MaxJobsPerUser = 2\n")
    await slow(bus, 4)
    await slow(bus, 4)
    error = await error_of(slow(bus, 4))
    assert error.type == ERROR + "QuotaExceeded" and "MaxJobsPerUser" in error.text


async def test_the_global_quota_names_its_limit(daemon_and_bus):
    _, bus = await daemon_and_bus(LASTING + "MaxJobs = 1\n")
    await slow(bus, 4)
    error = await error_of(slow(bus, 4))
    assert error.type == ERROR + "QuotaExceeded" and "MaxJobs" in error.text


# -- owner disconnect: the job runs on ------------------------------------------------

async def test_a_job_whose_owner_left_completes_and_a_later_connection_waits_for_it(
        daemon_and_bus):
    daemon, bus = await daemon_and_bus("SlowBitInterval = 0.05\n")
    started = harness.busctl(daemon.bus, "call", api.BUS_NAME, api.MANAGER_PATH,
                             api.MANAGER_INTERFACE, "Slow", "u", "8", check=True)
    path = started.stdout.split('"')[1]  # busctl has left the bus by now
    (number,) = await job_call(bus, path, "Wait")  # root too: the owner's uid
    assert 0 <= int(number) < 2**8
    assert await get_property(bus, "State", api.JOB_INTERFACE, path) == "completed"
    assert await get_property(bus, "OwnerConnected", api.JOB_INTERFACE, path) is False


async def test_a_thousand_jobs_whose_owner_left_run_on_and_leave_nothing_once_ended(
        daemon_and_bus):
    daemon, bus = await daemon_and_bus(LASTING + "MaxJobsPerUser = 1000\nResultTTL = 0\n")
    owner = await dbus.connect(daemon.bus.address)
    for _ in range(10):  # 100 at a time: below the bus's pending-call limit
        await asyncio.gather(*(slow(owner, 8) for _ in range(100)))
    recorder = SignalRecorder(bus)
    await add_match(bus, "type='signal',member='PropertiesChanged',"
                         f"path_namespace='{api.JOBS_PATH}'")
    owner.disconnect()
    await recorder.wait_for(lambda m: sum("OwnerConnected" in s.body[1]
                                          for s in recorder.signals) == 1000, timeout=30)
    assert await get_property(bus, "ActiveJobs") == 1000
    assert len(await managed_paths(bus)) == 1000
    await call(bus, "CancelAll")
    await wait_until(lambda: _no_jobs(bus), "the cancelled jobs to leave", timeout=30)
    assert await get_property(bus, "ActiveJobs") == 0


async def _no_jobs(bus) -> bool:
    return await managed_paths(bus) == []


# -- shutdown and idle exit ---------------------------------------------------------------

async def test_sigterm_fails_running_jobs_before_the_name_is_released(daemon_and_bus):
    daemon, bus = await daemon_and_bus(LASTING)
    recorder = SignalRecorder(bus)
    await add_match(bus, f"type='signal',member='NameOwnerChanged',arg0='{api.BUS_NAME}'")
    paths = [await slow(bus, 8) for _ in range(3)]
    assert daemon.terminate() == 0
    released = await recorder.wait_for(lambda m: m.member == "NameOwnerChanged")
    finished = [m for m in recorder.signals if m.member == "Finished"]
    assert sorted(m.path for m in finished) == sorted(paths)
    assert all(m.body == ["failed", "", ERROR + "ShuttingDown"] for m in finished)
    assert max(recorder.signals.index(m) for m in finished) < recorder.signals.index(released)


async def test_idle_exit_waits_for_jobs_then_exits_zero(daemon_and_bus):
    daemon, bus = await daemon_and_bus(
        "SlowBitInterval = 0.1\nIdleExitSec = 0.3\nResultTTL = 0\n")
    path = await slow(bus, 8)  # about 0.8 s, longer than IdleExitSec
    await job_call(bus, path, "Wait")
    assert await asyncio.to_thread(daemon.process.wait, harness.TIMEOUT) == 0


def test_without_idle_exit_the_daemon_stays(start_randomd, library):
    staying = start_randomd(FAST).wait_ready()
    other_bus = harness.SystemBus()
    leaving = harness.Randomd(other_bus, library, FAST + "IdleExitSec = 0.2\n").wait_ready()
    try:
        assert leaving.process.wait(harness.TIMEOUT) == 0
        assert staying.process.poll() is None
    finally:
        leaving.stop()
        other_bus.stop()
