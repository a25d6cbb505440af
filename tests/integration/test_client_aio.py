"""randomd.client.aio against randomd on the policy bus, as randomd-test.

The bus, polkitd, randomd and the way scenarios run as another user are
those of test_client (see its docstring).
"""

from __future__ import annotations

import asyncio
import sys
import time

import harness
import pytest
from test_client import (  # noqa: F401  (fixtures)
    CONFIG,
    INTERVAL,
    async_outcome,
    emit,
    proceed,
    randomd,
    run,
    scenario_start_and_hold,
    scenario_start_and_leave,
    scenarios,
    start,
)

from randomd import __version__


async def scenario_numbers_and_properties(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        limits = await client.limits()
        assert isinstance(limits, aio.Limits)
        return {"quick": [await client.quick(4) for _ in range(10)],
                "bytes": (await client.bytes(16)).hex(), "version": await client.version(),
                "limits": vars(limits), "interval": await client.slow_bit_interval(),
                "closed_inside": client.closed}


# The bus of every test here runs a real polkitd (conftest: polkit_bus, polkitd).
pytestmark = pytest.mark.usefixtures("polkitd")

def test_async_with_client_gives_numbers_and_properties(run):
    result = run(scenario_numbers_and_properties)["result"]
    assert all(0 <= n < 16 for n in result["quick"]) and len(bytes.fromhex(result["bytes"])) == 16
    assert result["version"] == __version__ and result["interval"] == INTERVAL
    assert result["limits"]["max_quick_bits"] == 2048 and result["closed_inside"] is False


async def scenario_connect(address):
    from randomd.client import aio
    client = await aio.Client.connect(address=address, timeout=5.0)
    try:
        job = await client.slow(4)
        assert isinstance(job, aio.Job)
        value = await job
        return {"value": value, "state": job.state, "same": await client.job(job.id) is job,
                "listed": [info.state for info in await client.jobs() if info.path == job.path]}
    finally:
        await client.close()
        assert client.closed


def test_connect_then_await_a_job(run):
    result = run(scenario_connect)["result"]
    assert 0 <= result["value"] < 16 and result["state"] == "completed"
    assert result["same"] is True and result["listed"] == ["completed"]


async def scenario_fifty_jobs_half_cancelled(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        jobs = [await client.slow(100) for _ in range(50)]  # 2 s each

        async def collect(job):
            return await job

        tasks = [asyncio.create_task(collect(job)) for job in jobs]
        await asyncio.sleep(0)  # the tasks now await their jobs
        for task in tasks[:25]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for job in jobs:
            await job.wait()
        return {"cancelled": [type(r).__name__ for r in results[:25]],
                "numbers": results[25:], "paths": [job.path for job in jobs],
                "states": [job.state for job in jobs]}


def test_fifty_jobs_with_25_awaiting_tasks_cancelled(run, polkit_bus):
    result = run(scenario_fifty_jobs_half_cancelled)["result"]
    assert result["cancelled"] == ["CancelledError"] * 25
    assert all(isinstance(n, int) and 0 <= n < 2**100 for n in result["numbers"])
    daemon = harness.managed_jobs(polkit_bus)
    assert [daemon[path]["State"] for path in result["paths"]] == (
        ["cancelled"] * 25 + ["completed"] * 25)
    assert result["states"] == ["cancelled"] * 25 + ["completed"] * 25


async def scenario_shield(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.slow(20)
        shielded = asyncio.shield(job)
        await asyncio.sleep(0)
        shielded.cancel()
        cancelled = await async_outcome(shielded)
        return {"awaiter": cancelled, "value": await job, "state": job.state}


def test_shield_keeps_the_job_running_when_its_awaiter_is_cancelled(run):
    result = run(scenario_shield)["result"]
    assert result["awaiter"]["error"]["class"] == "CancelledError"
    assert result["state"] == "completed" and 0 <= result["value"] < 2**20


async def scenario_two_awaiters(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.slow(200)

        async def collect():
            return await job

        first, second = asyncio.create_task(collect()), asyncio.create_task(collect())
        await asyncio.sleep(0)
        first.cancel()
        outcomes = [await async_outcome(first), await async_outcome(second)]
        await job.wait()
        return {"outcomes": [o["error"]["class"] for o in outcomes], "state": job.state,
                "daemon": [i.state for i in await client.jobs() if i.path == job.path]}


def test_cancelling_one_awaiter_cancels_the_job_for_every_awaiter(run):
    result = run(scenario_two_awaiters)["result"]
    assert result["outcomes"] == ["CancelledError", "CancelledError"]
    assert result["state"] == "cancelled" and result["daemon"] == ["cancelled"]


async def scenario_wait_for_timeout(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.slow(200)
        timed_out = await async_outcome(asyncio.wait_for(job, 0.2))
        await job.wait()
        return {"timed_out": timed_out["error"]["class"], "state": job.state}


def test_wait_for_timeout_cancels_the_job_as_a_future(run):
    assert run(scenario_wait_for_timeout)["result"] == {"timed_out": "TimeoutError",
                                                         "state": "cancelled"}


async def scenario_job_methods(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.slow(40)  # 0.8 s
        early = {"value": await async_outcome(_value(job)), "ready": job.ready,
                 "wait": await job.wait(0.05)}
        ends, steps, updates = [], [], []
        job.add_done_callback(lambda j: ends.append(j.state))
        job.on_progress(lambda j: steps.append(j.bits_done))
        async for same in job.progress_updates():
            assert same is job
            updates.append(job.bits_done)
        await job.wait()
        late = []
        job.add_done_callback(lambda j: late.append(j.ready))
        await asyncio.sleep(0)  # it runs soon, in the loop
        return {"early": early, "ends": ends, "late": late, "steps": steps, "updates": updates,
                "value": job.value, "result": await job.result(1),
                "listed": (await job.info()).state}


async def _value(job):
    return job.value


def test_job_wait_callbacks_progress_updates_and_value(run):
    result = run(scenario_job_methods)["result"]
    early = result["early"]
    assert early["value"]["error"]["class"] == "InvalidStateError"
    assert early["ready"] is False and early["wait"] is False
    assert result["ends"] == ["completed"] and result["late"] == [True]
    assert result["updates"] == result["steps"] and result["steps"][-1] == 40
    assert result["steps"] == sorted(set(result["steps"]))
    assert result["value"] == result["result"] and result["listed"] == "completed"


async def scenario_cancel_and_expiry(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        cancelled = await client.slow(200)
        await cancelled.cancel()
        state = cancelled.state
        await cancelled.cancel()  # no-op
        expiring = await client.slow(200)
        expiring.set_expiry(0.2)
        started = time.monotonic()
        error = await async_outcome(expiring)
        daemon = {i.path: i.state for i in await client.jobs()}
        return {"cancelled": state, "cancel_error": (await async_outcome(cancelled))["error"],
                "expired": error["error"], "after": time.monotonic() - started,
                "state": expiring.state, "is_expired": expiring.expired,
                "daemon": [daemon[cancelled.path], daemon[expiring.path]]}


def test_cancel_and_set_expiry(run):
    result = run(scenario_cancel_and_expiry)["result"]
    assert result["cancelled"] == "cancelled" and result["cancel_error"]["class"] == "Cancelled"
    assert result["expired"]["class"] == "Expired" and 0.2 <= result["after"] < 3
    assert result["state"] == "expired" and result["is_expired"]
    assert result["daemon"] == ["cancelled", "cancelled"]


async def scenario_admin(address, interactive):
    from randomd.client import aio
    async with aio.Client(address=address, interactive=interactive) as client:
        return [(await async_outcome(coro))["error"] for coro in (
            client.cancel_all(), client.reload(), client.set_slow_bit_interval(0.5))]


@pytest.mark.parametrize("interactive, required", [(False, True), (True, False)])
def test_admin_calls_unauthorized_are_not_authorized(run, interactive, required):
    for error in run(scenario_admin, interactive)["result"]:
        assert error["class"] == "NotAuthorized" and error["interactive_required"] is required


async def scenario_set_interval_as_root(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        await client.set_slow_bit_interval(0.01)
        value = await client.slow_bit_interval()
        await client.set_slow_bit_interval(INTERVAL)
        return value


def test_set_slow_bit_interval_writes_it(run):
    # As root, whom polkit never asks (nobody can authenticate randomd-test here).
    assert run(scenario_set_interval_as_root, user=None)["result"] == 0.01


async def scenario_close_while_awaiting(address):
    from randomd.client import aio
    client = await aio.Client.connect(address=address)
    job = await client.slow(200)
    awaiting = asyncio.create_task(async_outcome(job))
    waiting = asyncio.create_task(async_outcome(job.wait()))
    await asyncio.sleep(0)
    await client.close()
    return {"awaiting": (await awaiting)["error"]["class"],
            "waiting": (await waiting)["error"]["class"],
            "call": (await async_outcome(client.quick(1)))["error"]["class"],
            "ready": job.ready}


def test_close_makes_awaiters_and_calls_raise_closed(run):
    assert run(scenario_close_while_awaiting)["result"] == {
        "awaiting": "Closed", "waiting": "Closed", "call": "Closed", "ready": False}


async def scenario_not_connected(address):
    from randomd.client import aio
    return (await async_outcome(aio.Client(address=address).quick(1)))["error"]["class"]


def test_a_client_used_before_it_connects_raises_closed(run):
    assert run(scenario_not_connected)["result"] == "Closed"


async def scenario_attach(address, job_id):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.job(job_id)
        return {"value": await async_outcome(job), "state": job.state}


def test_job_of_another_process_of_the_same_user_is_awaitable(start):
    starter = start(scenario_start_and_hold, 100)
    job_id = starter.event()
    attached = start(scenario_attach, job_id).result()
    starter.send()
    assert attached == {"value": {"result": starter.result()}, "state": "completed"}


async def scenario_collect(address, job_id):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.job(job_id)
        error = await async_outcome(job.collect())
        return {"error": error["error"], "ready": job.ready}


def test_collect_of_another_users_job_is_refused_at_once(start):
    starter = start(scenario_start_and_hold, 200, user=None)  # root's job, 4 s
    job_id = starter.event()
    result = start(scenario_collect, job_id).result()
    starter.send()
    starter.kill()
    assert result["error"]["class"] == "NotAuthorized" and result["ready"] is False


def test_job_of_a_process_that_left_is_awaitable(start):
    job_id = start(scenario_start_and_leave, 40).result()
    attached = start(scenario_attach, job_id).result()
    assert attached["state"] == "completed" and "result" in attached["value"]


if __name__ == "__main__":
    from test_client import _launch
    _launch(sys.argv[1:])
