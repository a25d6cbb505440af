"""randomd.client when randomd or the bus fails, under load, and when polkit says no.

Each test starts its own randomd (with its own configuration) on this
module's policy bus, which runs a real polkitd, and a scenario of
peers/client_fault_scenarios.py (by function, client_fault_scenarios.NAME)
as randomd-test (see test_client and scenarios.py).
"""

from __future__ import annotations

import signal

import harness
import pytest
from peers import client_fault_scenarios
from polkit_harness import Polkitd, policy_bus
from scenarios import Scenario

# The bus of every test here runs a real polkitd (conftest: polkit_bus, polkitd).
pytestmark = pytest.mark.usefixtures("polkitd")

# A polkit rule of the README's kind: randomd-test may not start slow jobs.
NO_SLOW_RULE = f"""polkit.addRule(function(action, subject) {{
    if (action.id == "org.randomd.Random1.slow" && subject.user == "{harness.TEST_USER}") {{
        return polkit.Result.NO;
    }}
}});
"""


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

def test_sigkill_of_randomd_mid_job_gives_job_lost(daemons, user):
    daemon = daemons()
    scenario = user(client_fault_scenarios.job_lost)
    scenario.event()
    daemon.terminate(signal.SIGKILL)
    scenario.send()
    result = scenario.result()
    assert result["value"]["error"]["class"] == "JobLost"
    assert result["after"] < 3 and result["state"] == "failed" and result["ready"]


def test_sigkill_of_randomd_mid_job_gives_job_lost_in_asyncio(daemons, user):
    daemon = daemons()
    scenario = user(client_fault_scenarios.job_lost_aio)
    scenario.event()
    daemon.terminate(signal.SIGKILL)
    scenario.send()
    result = scenario.result()
    assert result["after"] < 3 and result["state"] == "failed"
    assert result["error"].endswith(".") and "\n" not in result["error"]


def test_sigkill_of_randomd_gives_job_lost_to_an_attached_job(daemons, user):
    daemon = daemons()
    starter = user(client_fault_scenarios.start_and_hold)
    attached = user(client_fault_scenarios.attached_job_lost, starter.event())
    assert attached.event() == "attached"
    daemon.terminate(signal.SIGKILL)
    assert attached.result()["error"]["class"] == "JobLost"


def test_after_a_restart_old_jobs_are_lost_and_new_ids_start_at_1(daemons, user):
    daemon = daemons()
    scenario = user(client_fault_scenarios.restart)
    assert scenario.event() == 1
    daemon.terminate(signal.SIGKILL)
    daemons()
    scenario.send()
    result = scenario.result()
    assert result["lost"] == "JobLost" and result["old_state"] == "failed"
    assert result["new_id"] == 1 and 0 <= result["new"] < 4
    # Job 1 of the new instance is the new job, not the lost one.
    assert result["again_is_old"] is False and result["again_state"] == "completed"


def test_sigterm_of_randomd_mid_job_gives_shutting_down(daemons, user):
    daemon = daemons()
    scenario = user(client_fault_scenarios.stopping)
    scenario.event()
    assert daemon.terminate() == 0
    error = scenario.result()["error"]
    assert error["class"] == "ShuttingDown"
    assert error["dbus_name"] == "org.randomd.Random1.Error.ShuttingDown"


# -- no daemon, no bus, no answer -------------------------------------------------

def test_no_randomd_gives_unavailable(polkit_bus, library, scenarios):
    scenario = scenarios(polkit_bus.address, library, client_fault_scenarios.no_daemon)
    for result in scenario.result():
        error = result["error"]
        assert error["class"] == "Unavailable" and error["is_error"]
        assert error["dbus_name"] == "org.freedesktop.DBus.Error.ServiceUnknown"
        assert "not running" in error["message"]


def test_no_bus_gives_unavailable(tmp_path, library, scenarios):
    tmp_path.chmod(0o755)
    address = f"unix:path={tmp_path}/no-such-socket"
    for result in scenarios(address, library, client_fault_scenarios.no_bus).result():
        assert result["error"]["class"] == "Unavailable"
        assert result["error"]["message"].startswith("Cannot connect to the bus at")


def test_no_answer_within_the_timeout_gives_timeout(daemons, user):
    daemon = daemons()
    scenario = user(client_fault_scenarios.timeout)
    scenario.event()
    daemon.process.send_signal(signal.SIGSTOP)
    try:
        scenario.send()
        result = scenario.result()
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    assert result["error"]["class"] == "Timeout" and "0.3 s" in result["error"]["message"]
    assert 0.3 <= result["after"] < 3


def test_waiting_for_a_job_has_no_timeout(daemons, user):
    daemons()
    result = user(client_fault_scenarios.slow_job_outlives_the_timeout).result()
    assert result["state"] == "completed"


# -- polkit -------------------------------------------------------------------

def test_slow_refused_by_a_polkit_rule_is_not_authorized(users, library, scenarios):
    bus = policy_bus()
    polkitd = Polkitd(bus, rules={"50-no-slow.rules": NO_SLOW_RULE})
    daemon = None
    try:
        polkitd.start()
        daemon = harness.Randomd(bus, library).wait_ready()
        scenario = scenarios(bus.address, library, client_fault_scenarios.slow_refused)
        error = scenario.result()["error"]
    finally:
        if daemon is not None:
            daemon.stop()
        polkitd.close()
        bus.stop()
    assert error["class"] == "NotAuthorized" and error["interactive_required"] is False
    assert error["dbus_name"] == "org.freedesktop.DBus.Error.AccessDenied"


# -- load ------------------------------------------------------------------------

MANY = "SlowBitInterval = 0\nMaxJobs = 1024\nMaxJobsPerUser = 1024\n"


def test_a_thousand_one_bit_jobs_none_of_their_ends_missed(daemons, user):
    daemons(MANY)
    result = user(client_fault_scenarios.many_jobs, 1000).result(timeout=120)
    assert result["count"] == 1000 and result["ended"] == result["calls"] == 1000
    assert result["values"] == [0, 1] and result["states"] == ["completed"]


def test_a_thousand_concurrent_one_bit_jobs_in_asyncio(daemons, user):
    daemons(MANY)
    result = user(client_fault_scenarios.many_jobs_aio, 1000).result(timeout=120)
    assert result == {"values": [0, 1], "count": 1000, "distinct_jobs": 1000}
