"""randomd.client, the blocking Python client, against randomd on the policy bus.

Every scenario runs in a subprocess as the unprivileged user randomd-test
(root only where the test says why), on the bus library of the ``library``
parameter, which randomd runs on too.  The bus enforces the shipped policy
and runs a real polkitd with the project's actions and no rules: with no
logind session, org.randomd.Random1.slow is granted, configure and
manage-jobs need an administrator's password nobody here can give.  So
randomd-test is refused those actions: a call that allows no prompt gets
InteractiveAuthorizationRequired, an interactive one AccessDenied.

Each test starts a scenario of peers/client_scenarios.py (by function,
client_scenarios.NAME) with the ``run`` or ``start`` fixture, and checks
what it returned or raised (see scenarios.py and peers/run_scenario.py).
"""

from __future__ import annotations

import asyncio

import harness
import pytest
from peers import client_scenarios
from scenarios import CLIENT_INTERVAL

from randomd import __version__, api

# The bus of every test here runs a real polkitd (conftest: polkit_bus, polkitd).
pytestmark = pytest.mark.usefixtures("polkitd")

USER = harness.TEST_USER
INTERVAL = CLIENT_INTERVAL  # SlowBitInterval of client_randomd


# -- fixtures -----------------------------------------------------------------







# -- numbers and properties ---------------------------------------------------

def test_quick_returns_numbers_below_two_to_the_bits(run_scenario):
    numbers = run_scenario(client_scenarios.quick, 5)["result"]
    assert all(0 <= n < 32 for n in numbers) and len(set(numbers)) > 1


def test_quick_returns_large_numbers_as_int(run_scenario):
    numbers = run_scenario(client_scenarios.quick, 2048)["result"]
    assert all(0 <= n < 2**2048 for n in numbers) and max(numbers) > 2**2000


def test_bytes_returns_count_random_bytes(run_scenario):
    kind, data = run_scenario(client_scenarios.random_bytes, 4096)["result"]
    assert kind == "bytes" and len(bytes.fromhex(data)) == 4096 and len(set(data)) > 10


@pytest.mark.parametrize("member, value", [("quick", 2049), ("bytes", 4097), ("slow", 257)])
def test_argument_beyond_randomd_limit_is_invalid_argument(run_scenario, member, value):
    error = run_scenario(client_scenarios.refused_argument, member, value)["result"]["error"]
    assert error["class"] == "InvalidArgument" and error["is_error"]
    assert error["dbus_name"] == "org.randomd.Random1.Error.InvalidArgument"
    assert str(value) in error["message"]


@pytest.mark.parametrize("member, value", [("quick", 0), ("bytes", 0), ("slow", 0),
                                           ("quick", -1), ("quick", 2**32), ("quick", "8"),
                                           ("slow", True)])
def test_argument_the_client_refuses_carries_the_api_error_name(run_scenario, member, value):
    error = run_scenario(client_scenarios.refused_argument, member, value)["result"]["error"]
    assert error["class"] == "InvalidArgument"
    assert error["dbus_name"] == "org.randomd.Random1.Error.InvalidArgument"
    assert error["message"].endswith(".") and "\n" not in error["message"]


def test_version_limits_and_slow_bit_interval_are_read(run_scenario):
    result = run_scenario(client_scenarios.properties)["result"]
    assert result["version"] == __version__
    assert result["limits"] == {"max_quick_bits": 2048, "max_bytes": 4096, "max_slow_bits": 256,
                                "max_jobs": 1024, "max_jobs_per_user": 64}
    assert result["interval"] == INTERVAL


def test_assigning_slow_bit_interval_writes_it(run_scenario):
    # As root, whom polkit never asks: nobody can authenticate randomd-test here.
    try:
        set_as_root = run_scenario(client_scenarios.set_interval, 0.01, False, user=None)
        assert set_as_root["result"] == {"result": 0.01}
    finally:
        run_scenario(client_scenarios.set_interval, INTERVAL, False, user=None)


@pytest.mark.parametrize("interactive, required", [(False, True), (True, False)])
def test_assigning_slow_bit_interval_unauthorized_is_not_authorized(run_scenario, interactive,
                                                                    required):
    error = run_scenario(client_scenarios.set_interval, 0.5, interactive)["result"]["error"]
    assert error["class"] == "NotAuthorized"
    assert error["interactive_required"] is required
    assert error["dbus_name"] == ("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
                                  if required else "org.freedesktop.DBus.Error.AccessDenied")


@pytest.mark.parametrize("member", ["cancel_all", "reload"])
@pytest.mark.parametrize("interactive, required", [(False, True), (True, False)])
def test_admin_calls_unauthorized_are_not_authorized(run_scenario, member, interactive, required):
    error = run_scenario(client_scenarios.admin, member, interactive)["result"]["error"]
    assert error["class"] == "NotAuthorized" and error["interactive_required"] is required


def test_reload_as_root_returns_once_in_effect(run_scenario):
    # root, whom polkit never asks (configure needs a password nobody can type here).
    outcome = run_scenario(client_scenarios.admin, "reload", False, user=None)
    assert outcome["result"] == {"result": None}


def test_cancel_all_cancels_every_running_job(run_scenario):
    # root: manage-jobs needs a password nobody can type here.
    result = run_scenario(client_scenarios.cancel_all_as_root, user=None)["result"]
    assert result["error"]["class"] == "Cancelled"


# -- jobs ------------------------------------------------------------------------

def test_slow_job_gives_a_number_of_its_bits(run_scenario):
    result = run_scenario(client_scenarios.slow, 12)["result"]
    before = result["before"]
    assert before["path"] == api.job_path(before["id"]) and before["bits"] == 12
    assert before["state"] == "running" and not before["ready"] and not before["error"]
    assert not before["expired"]
    assert 0 <= result["value"] < 2**12
    assert result["state"] == "completed" and result["ready"] and not result["error"]
    assert result["bits_done"] == 12 and result["progress"] == 1.0


def test_wait_and_result_with_a_timeout_leave_the_job_running(run_scenario):
    result = run_scenario(client_scenarios.wait_and_result)["result"]
    assert result["waited"] is False and 0.2 <= result["after_wait"] < 2
    assert result["timed_out"]["error"]["class"] == "TimeoutError"
    assert result["ready"] is False
    assert result["wait_after_cancel"] is True and result["state"] == "cancelled"


def test_result_gives_the_number(run_scenario):
    assert 0 <= run_scenario(client_scenarios.result)["result"] < 16


def test_callbacks_run_once_in_the_clients_thread(run_scenario):
    result = run_scenario(client_scenarios.callbacks, 16)["result"]
    ends = [call for call in result["calls"] if call[0] != "progress"]
    assert [call[0] for call in ends] == ["early", "late"]
    threads = {call[1] for call in result["calls"]}
    assert threads == {"randomd.client"} and result["main"] not in threads
    assert all(call[2] and call[3] for call in ends)


def test_callbacks_run_in_the_clients_thread_after_quick_ran_in_the_callers(run_scenario):
    result = run_scenario(client_scenarios.callbacks_after_quick)["result"]
    assert result["threads"] == ["randomd.client"] and result["main"] != "randomd.client"
    assert len(result["numbers"]) == 4 and all(0 <= n < 256 for n in result["numbers"])


def test_quick_works_from_a_coroutine_of_the_programs_own_loop(run_scenario):
    assert 0 <= run_scenario(client_scenarios.quick_from_a_coroutine)["result"] < 256


def test_on_progress_is_called_at_each_step_the_last_included(run_scenario):
    calls = run_scenario(client_scenarios.callbacks, 40)["result"]["calls"]  # 0.8 s: several steps
    steps = [call[4] for call in calls if call[0] == "progress"]
    assert len(steps) >= 2 and steps == sorted(set(steps)) and steps[-1] == 40
    assert calls.index(next(c for c in calls if c[0] == "early")) > len(steps) - 1


def test_blocking_call_from_a_callback_raises_runtime_error(run_scenario):
    quick, slow, value = run_scenario(client_scenarios.blocking_call_in_callback)["result"]
    assert quick["error"]["class"] == slow["error"]["class"] == "RuntimeError"
    assert "deadlock" in quick["error"]["message"]
    assert 0 <= value["result"] <= 1


def test_set_expiry_cancels_the_job_on_randomd(run_scenario, polkit_bus):
    result = run_scenario(client_scenarios.set_expiry)["result"]
    assert result["waited"] and 0.3 <= result["after"] < 3
    assert result["state"] == "expired" and result["expired"] and result["error"]
    assert result["value"]["error"]["class"] == "Expired"
    assert result["value"]["error"]["dbus_name"] == "org.randomd.Random1.Error.Expired"
    assert result["daemon"][result["path"]] == "cancelled"


def test_set_expiry_of_a_job_that_ends_in_time_changes_nothing(run_scenario):
    result = run_scenario(client_scenarios.set_expiry_after_end)["result"]
    assert result["state"] == "completed" and not result["expired"] and result["value"] < 4


def test_cancel_ends_the_job_cancelled_once_seen(run_scenario):
    result = run_scenario(client_scenarios.cancel)["result"]
    assert result["state"] == "cancelled" and result["ready"]
    assert result["value"]["error"]["class"] == "Cancelled"
    assert result["value"]["error"]["dbus_name"] == "org.randomd.Random1.Error.Cancelled"
    assert result["daemon"] == "cancelled"


def test_slow_over_the_quota_is_quota_exceeded(run_scenario):
    error = run_scenario(client_scenarios.quota, 64)["result"]["error"]
    assert error["class"] == "QuotaExceeded"
    assert error["dbus_name"] == "org.randomd.Random1.Error.QuotaExceeded"


def test_jobs_lists_job_info_with_the_api_properties(run_scenario):
    result = run_scenario(client_scenarios.jobs)["result"]
    uid = harness.ensure_user(USER).pw_uid
    running, done = result["jobs"][result["running"]], result["jobs"][result["done"]]
    assert running["state"] == "running" and not running["finished"]
    assert running["bits"] == 200 and running["error"] == "" and running["owner_uid"] == uid
    assert running["owner"].startswith(":") and running["owner_connected"] is True
    assert running["id"] == int(result["running"].rsplit("/", 1)[1])
    assert done["state"] == "completed" and done["finished"] and done["progress"] == 1.0
    assert done["bits_done"] == 1 and 0 <= running["age"] < 30
    assert result["sorted"]


def test_job_of_a_held_path_is_the_same_job(run_scenario):
    assert run_scenario(client_scenarios.attach_own)["result"]["same"] == [True, True, True]


def test_job_of_an_unknown_id_is_no_such_job(run_scenario):
    error = run_scenario(client_scenarios.unknown_job, 99999)["result"]["error"]
    assert error["class"] == "NoSuchJob"
    assert error["dbus_name"] == "org.randomd.Random1.Error.NoSuchJob"


@pytest.mark.parametrize("ref", ["x", "/org/randomd/Random1/jobs/", 0, "/elsewhere/7"])
def test_job_of_a_malformed_id_is_invalid_argument(run_scenario, ref):
    error = run_scenario(client_scenarios.unknown_job, ref)["result"]["error"]
    assert error["class"] == "InvalidArgument"


def test_job_of_another_process_of_the_same_user_gives_its_number(start_scenario):
    starter = start_scenario(client_scenarios.start_and_hold, 150)  # 3 s
    job_id = starter.event()
    attached = start_scenario(client_scenarios.attach, job_id).result()
    starter.send()
    assert attached["value"]["result"] == starter.result()
    assert attached["state"] == "completed" and attached["steps"][-1] == 150


def test_job_of_a_process_that_left_gives_its_number(start_scenario):
    job_id = start_scenario(client_scenarios.start_and_leave, 40).result()
    attached = start_scenario(client_scenarios.attach, job_id).result()
    assert attached["state"] == "completed" and 0 <= attached["value"]["result"] < 2**40


def test_job_of_a_process_that_left_can_be_cancelled(start_scenario):
    job_id = start_scenario(client_scenarios.start_and_leave, 200).result()
    assert start_scenario(client_scenarios.attach_and_cancel, job_id).result() == "cancelled"


def test_job_of_another_uid_follows_it_and_its_value_is_not_authorized(start_scenario):
    starter = start_scenario(client_scenarios.start_and_hold, 30, user=None)  # root's job
    job_id = starter.event()
    attached = start_scenario(client_scenarios.attach, job_id).result()
    starter.send()
    starter.result()
    assert attached["ready"] and attached["state"] == "completed" and attached["error"]
    error = attached["value"]["error"]
    assert error["class"] == "NotAuthorized" and error["interactive_required"] is True


def test_close_makes_waiters_and_calls_raise_closed(run_scenario):
    result = run_scenario(client_scenarios.close_while_waiting)["result"]
    assert [w["error"]["class"] for w in result["waiter"]] == ["Closed"]
    assert result["after"]["error"]["class"] == "Closed"
    assert result["call"]["error"]["class"] == "Closed"
    assert result["ready"] is False and result["state"] == "running" and result["closed"]


def test_one_client_is_shared_by_eight_threads(run_scenario):
    results = run_scenario(client_scenarios.threads, 8, 50)["result"]
    assert len(results) == 8
    for result in results:
        assert len(result["numbers"]) == 50 and all(0 <= n < 2**16 for n in result["numbers"])
        assert 0 <= result["value"] < 256 and result["bytes"] == 8


def test_only_signals_from_randomd_count(start_scenario, polkit_bus):
    scenario = start_scenario(client_scenarios.forged_finished)
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
