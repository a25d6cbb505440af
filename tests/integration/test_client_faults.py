"""randomd.client when randomd or the bus fails, under load, and when polkit says no.

Each test starts its own randomd (with its own configuration) on this
module's policy bus, which runs a real polkitd; scenarios run as randomd-test
(see test_client).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import harness
import pytest
from polkit_harness import Polkitd, policy_bus
from test_client import Scenario, emit, outcome, proceed, scenarios  # noqa: F401

# A polkit rule of the README's kind: randomd-test may not start slow jobs.
NO_SLOW_RULE = f"""polkit.addRule(function(action, subject) {{
    if (action.id == "org.randomd.Random1.slow" && subject.user == "{harness.TEST_USER}") {{
        return polkit.Result.NO;
    }}
}});
"""




# The bus of every test here runs a real polkitd (conftest: polkit_bus, polkitd).
pytestmark = pytest.mark.usefixtures("polkitd")

@pytest.fixture
def daemons(polkit_bus, library):
    """Start randomd on this module's bus with a config text; stopped after the test."""
    started: list[harness.Randomd] = []

    def start(config: str = "SlowBitInterval = 0.02\n") -> harness.Randomd:
        daemon = harness.Randomd(polkit_bus, library, config).wait_ready()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def user(polkit_bus, library, scenarios):
    """Start a scenario as randomd-test against this module's bus."""
    def start(func, *args, **kwargs) -> Scenario:
        return scenarios(polkit_bus.address, library, func, *args, **kwargs)
    return start


# -- randomd leaves the bus --------------------------------------------------

def scenario_job_lost(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(200)  # 4 s
        emit(job.id)
        proceed()  # randomd is being killed
        started = time.monotonic()
        value = outcome(lambda: job.value)
        return {"value": value, "after": time.monotonic() - started, "state": job.state,
                "ready": job.ready}


def test_sigkill_of_randomd_mid_job_gives_job_lost(daemons, user):
    daemon = daemons()
    scenario = user(scenario_job_lost)
    scenario.event()
    daemon.terminate(signal.SIGKILL)
    scenario.send()
    result = scenario.result()
    assert result["value"]["error"]["class"] == "JobLost"
    assert result["after"] < 3 and result["state"] == "failed" and result["ready"]


async def scenario_job_lost_aio(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.slow(200)
        emit(job.id)
        await asyncio.get_running_loop().run_in_executor(None, proceed)
        started = time.monotonic()
        try:
            await job
        except aio.JobLost as error:
            return {"error": str(error), "after": time.monotonic() - started,
                    "state": job.state}


def test_sigkill_of_randomd_mid_job_gives_job_lost_in_asyncio(daemons, user):
    daemon = daemons()
    scenario = user(scenario_job_lost_aio)
    scenario.event()
    daemon.terminate(signal.SIGKILL)
    scenario.send()
    result = scenario.result()
    assert result["after"] < 3 and result["state"] == "failed"
    assert result["error"].endswith(".") and "\n" not in result["error"]


def scenario_attached_job_lost(address, job_id):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.job(job_id)
        emit("attached")
        return outcome(lambda: job.value)


def scenario_start_and_hold(address):
    from randomd.client import Client
    with Client(address=address) as client:
        emit(client.slow(200).id)
        proceed()


def test_sigkill_of_randomd_gives_job_lost_to_an_attached_job(daemons, user):
    daemon = daemons()
    starter = user(scenario_start_and_hold)
    attached = user(scenario_attached_job_lost, starter.event())
    assert attached.event() == "attached"
    daemon.terminate(signal.SIGKILL)
    assert attached.result()["error"]["class"] == "JobLost"


def scenario_restart(address):
    from randomd.client import Client
    with Client(address=address) as client:
        old = client.slow(200)
        emit(old.id)
        proceed()  # randomd was killed and a new one started
        lost = outcome(lambda: old.value)
        new = client.slow(2)
        again = client.job(old.id)
        return {"lost": lost["error"]["class"], "old_id": old.id, "new_id": new.id,
                "new": new.value, "again_is_old": again is old, "again_state": again.state,
                "old_state": old.state}


def test_after_a_restart_old_jobs_are_lost_and_new_ids_start_at_1(daemons, user):
    daemon = daemons()
    scenario = user(scenario_restart)
    assert scenario.event() == 1
    daemon.terminate(signal.SIGKILL)
    daemons()
    scenario.send()
    result = scenario.result()
    assert result["lost"] == "JobLost" and result["old_state"] == "failed"
    assert result["new_id"] == 1 and 0 <= result["new"] < 4
    # Job 1 of the new instance is the new job, not the lost one.
    assert result["again_is_old"] is False and result["again_state"] == "completed"


def scenario_stopping(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(200)
        emit(job.id)
        return outcome(lambda: job.value)


def test_sigterm_of_randomd_mid_job_gives_shutting_down(daemons, user):
    daemon = daemons()
    scenario = user(scenario_stopping)
    scenario.event()
    assert daemon.terminate() == 0
    error = scenario.result()["error"]
    assert error["class"] == "ShuttingDown"
    assert error["dbus_name"] == "org.randomd.Random1.Error.ShuttingDown"


# -- no daemon, no bus, no answer -------------------------------------------------

def scenario_no_daemon(address):
    from randomd.client import Client
    with Client(address=address) as client:
        return [outcome(lambda: client.quick(8)), outcome(lambda: client.slow(8)),
                outcome(lambda: client.version)]


def test_no_randomd_gives_unavailable(polkit_bus, library, scenarios):
    for result in scenarios(polkit_bus.address, library, scenario_no_daemon).result():
        error = result["error"]
        assert error["class"] == "Unavailable" and error["is_error"]
        assert error["dbus_name"] == "org.freedesktop.DBus.Error.ServiceUnknown"
        assert "not running" in error["message"]


def scenario_no_bus(address):
    from randomd.client import Client, aio

    async def connect():
        await aio.Client.connect(address=address)

    return [outcome(lambda: Client(address=address)), outcome(lambda: asyncio.run(connect()))]


def test_no_bus_gives_unavailable(tmp_path, library, scenarios):
    tmp_path.chmod(0o755)
    address = f"unix:path={tmp_path}/no-such-socket"
    for result in scenarios(address, library, scenario_no_bus).result():
        assert result["error"]["class"] == "Unavailable"
        assert result["error"]["message"].startswith("Cannot connect to the bus at")


def scenario_timeout(address):
    from randomd.client import Client
    with Client(address=address, timeout=0.3) as client:
        emit("connected")
        proceed()  # randomd is stopped (SIGSTOP)
        started = time.monotonic()
        result = outcome(lambda: client.quick(8))
        return {"error": result["error"], "after": time.monotonic() - started}


def test_no_answer_within_the_timeout_gives_timeout(daemons, user):
    daemon = daemons()
    scenario = user(scenario_timeout)
    scenario.event()
    daemon.process.send_signal(signal.SIGSTOP)
    try:
        scenario.send()
        result = scenario.result()
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    assert result["error"]["class"] == "Timeout" and "0.3 s" in result["error"]["message"]
    assert 0.3 <= result["after"] < 3


def scenario_slow_job_outlives_the_timeout(address):
    from randomd.client import Client
    with Client(address=address, timeout=0.5) as client:
        job = client.slow(60)  # 1.2 s at 0.02 s per bit: longer than the call timeout
        return {"value": job.value, "state": job.state}


def test_waiting_for_a_job_has_no_timeout(daemons, user):
    daemons()
    result = user(scenario_slow_job_outlives_the_timeout).result()
    assert result["state"] == "completed"


# -- polkit -------------------------------------------------------------------

def scenario_slow_refused(address):
    from randomd.client import Client
    with Client(address=address) as client:
        return outcome(lambda: client.slow(8))


def test_slow_refused_by_a_polkit_rule_is_not_authorized(users, library, scenarios):
    bus = policy_bus()
    polkitd = Polkitd(bus, rules={"50-no-slow.rules": NO_SLOW_RULE})
    daemon = None
    try:
        polkitd.start()
        daemon = harness.Randomd(bus, library).wait_ready()
        error = scenarios(bus.address, library, scenario_slow_refused).result()["error"]
    finally:
        if daemon is not None:
            daemon.stop()
        polkitd.close()
        bus.stop()
    assert error["class"] == "NotAuthorized" and error["interactive_required"] is False
    assert error["dbus_name"] == "org.freedesktop.DBus.Error.AccessDenied"


# -- load ------------------------------------------------------------------------

MANY = "SlowBitInterval = 0\nMaxJobs = 1024\nMaxJobsPerUser = 1024\n"


def scenario_many_jobs(address, count):
    import threading

    from randomd.client import Client
    ended: list[int] = []
    all_ended = threading.Event()

    def on_end(job):  # callbacks run one at a time, in the client's thread
        ended.append(job.id)
        if len(ended) == count:
            all_ended.set()

    with Client(address=address) as client:
        jobs = [client.slow(1) for _ in range(count)]
        for job in jobs:
            job.add_callback(on_end)
        values = [job.result(timeout=30) for job in jobs]
        all_ended.wait(30)
        return {"values": sorted(set(values)), "count": len(values),
                "ended": len(set(ended)), "calls": len(ended),
                "states": sorted({job.state for job in jobs})}


def test_a_thousand_one_bit_jobs_none_of_their_ends_missed(daemons, user):
    daemons(MANY)
    result = user(scenario_many_jobs, 1000).result(timeout=120)
    assert result["count"] == 1000 and result["ended"] == result["calls"] == 1000
    assert result["values"] == [0, 1] and result["states"] == ["completed"]


async def scenario_many_jobs_aio(address, count):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        jobs = await asyncio.gather(*(client.slow(1) for _ in range(count)))
        async with asyncio.timeout(30):
            values = await asyncio.gather(*jobs)
        return {"values": sorted(set(values)), "count": len(values),
                "distinct_jobs": len({job.path for job in jobs})}


def test_a_thousand_concurrent_one_bit_jobs_in_asyncio(daemons, user):
    daemons(MANY)
    result = user(scenario_many_jobs_aio, 1000).result(timeout=120)
    assert result == {"values": [0, 1], "count": 1000, "distinct_jobs": 1000}


if __name__ == "__main__":
    from test_client import _launch
    _launch(sys.argv[1:])
