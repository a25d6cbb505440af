"""randomd.client.aio against randomd on the policy bus, as randomd-test.

The bus, polkitd and randomd are as in test_client (see its docstring).
Each test starts a scenario of peers/client_aio_scenarios.py (by function,
client_aio_scenarios.NAME), or of peers/client_scenarios.py where a job is
started by the blocking client, with the ``run`` or ``start`` fixture.
"""

from __future__ import annotations

import harness
import pytest
from peers import client_aio_scenarios, client_scenarios
from scenarios import CLIENT_INTERVAL

from randomd import __version__

# The bus of every test here runs a real polkitd (conftest: polkit_bus, polkitd).
pytestmark = pytest.mark.usefixtures("polkitd")

USER = harness.TEST_USER
INTERVAL = CLIENT_INTERVAL  # SlowBitInterval of client_randomd








def test_async_with_client_gives_numbers_and_properties(run_scenario):
    result = run_scenario(client_aio_scenarios.numbers_and_properties)["result"]
    assert all(0 <= n < 16 for n in result["quick"]) and len(bytes.fromhex(result["bytes"])) == 16
    assert result["version"] == __version__ and result["interval"] == INTERVAL
    assert result["limits"]["max_quick_bits"] == 2048 and result["closed_inside"] is False


def test_connect_then_await_a_job(run_scenario):
    result = run_scenario(client_aio_scenarios.connect)["result"]
    assert 0 <= result["value"] < 16 and result["state"] == "completed"
    assert result["same"] is True and result["listed"] == ["completed"]


def test_fifty_jobs_with_25_awaiting_tasks_cancelled(run_scenario, polkit_bus):
    result = run_scenario(client_aio_scenarios.fifty_jobs_half_cancelled)["result"]
    assert result["cancelled"] == ["CancelledError"] * 25
    assert all(isinstance(n, int) and 0 <= n < 2**100 for n in result["numbers"])
    daemon = harness.managed_jobs(polkit_bus)
    assert [daemon[path]["State"] for path in result["paths"]] == (
        ["cancelled"] * 25 + ["completed"] * 25)
    assert result["states"] == ["cancelled"] * 25 + ["completed"] * 25


def test_shield_keeps_the_job_running_when_its_awaiter_is_cancelled(run_scenario):
    result = run_scenario(client_aio_scenarios.shield)["result"]
    assert result["awaiter"]["error"]["class"] == "CancelledError"
    assert result["state"] == "completed" and 0 <= result["value"] < 2**20


def test_cancelling_one_awaiter_cancels_the_job_for_every_awaiter(run_scenario):
    result = run_scenario(client_aio_scenarios.two_awaiters)["result"]
    assert result["outcomes"] == ["CancelledError", "CancelledError"]
    assert result["state"] == "cancelled" and result["daemon"] == ["cancelled"]


def test_wait_for_timeout_cancels_the_job_as_a_future(run_scenario):
    assert run_scenario(client_aio_scenarios.wait_for_timeout)["result"] == {
        "timed_out": "TimeoutError", "state": "cancelled"}


def test_job_wait_callbacks_progress_updates_and_value(run_scenario):
    result = run_scenario(client_aio_scenarios.job_methods)["result"]
    early = result["early"]
    assert early["value"]["error"]["class"] == "InvalidStateError"
    assert early["ready"] is False and early["wait"] is False
    assert result["ends"] == ["completed"] and result["late"] == [True]
    assert result["updates"] == result["steps"] and result["steps"][-1] == 40
    assert result["steps"] == sorted(set(result["steps"]))
    assert result["value"] == result["result"] and result["listed"] == "completed"


def test_cancel_and_set_expiry(run_scenario):
    result = run_scenario(client_aio_scenarios.cancel_and_expiry)["result"]
    assert result["cancelled"] == "cancelled" and result["cancel_error"]["class"] == "Cancelled"
    assert result["expired"]["class"] == "Expired" and 0.2 <= result["after"] < 3
    assert result["state"] == "expired" and result["is_expired"]
    assert result["daemon"] == ["cancelled", "cancelled"]


@pytest.mark.parametrize("interactive, required", [(False, True), (True, False)])
def test_admin_calls_unauthorized_are_not_authorized(run_scenario, interactive, required):
    for error in run_scenario(client_aio_scenarios.admin, interactive)["result"]:
        assert error["class"] == "NotAuthorized" and error["interactive_required"] is required


def test_set_slow_bit_interval_writes_it(run_scenario):
    # As root, whom polkit never asks (nobody can authenticate randomd-test here).
    result = run_scenario(client_aio_scenarios.set_interval_as_root, 0.01, INTERVAL, user=None)
    assert result["result"] == 0.01


def test_close_makes_awaiters_and_calls_raise_closed(run_scenario):
    assert run_scenario(client_aio_scenarios.close_while_awaiting)["result"] == {
        "awaiting": "Closed", "waiting": "Closed", "call": "Closed", "ready": False}


def test_a_client_used_before_it_connects_raises_closed(run_scenario):
    assert run_scenario(client_aio_scenarios.not_connected)["result"] == "Closed"


def test_job_of_another_process_of_the_same_user_is_awaitable(start_scenario):
    starter = start_scenario(client_scenarios.start_and_hold, 100)
    job_id = starter.event()
    attached = start_scenario(client_aio_scenarios.attach, job_id).result()
    starter.send()
    assert attached == {"value": {"result": starter.result()}, "state": "completed"}


def test_collect_of_another_users_job_is_refused_at_once(start_scenario):
    starter = start_scenario(client_scenarios.start_and_hold, 200, user=None)  # root's job, 4 s
    job_id = starter.event()
    result = start_scenario(client_aio_scenarios.collect, job_id).result()
    starter.send()
    starter.kill()
    assert result["error"]["class"] == "NotAuthorized" and result["ready"] is False


def test_job_of_a_process_that_left_is_awaitable(start_scenario):
    job_id = start_scenario(client_scenarios.start_and_leave, 40).result()
    attached = start_scenario(client_aio_scenarios.attach, job_id).result()
    assert attached["state"] == "completed" and "result" in attached["value"]
