"""Scenarios of randomd.client.aio, the asyncio client, run by test_client_aio.py.

Each is a coroutine function (address, *args) that run_scenario.py runs to
its end in a process of randomd-test (or root, where the test says why), on
the bus library the test's randomd runs on.
"""

from __future__ import annotations

import asyncio
import time

from peers.scenario import async_outcome, tasks_awaiting


async def numbers_and_properties(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        limits = await client.limits()
        assert isinstance(limits, aio.Limits)
        return {"quick": [await client.quick(4) for _ in range(10)],
                "bytes": (await client.bytes(16)).hex(), "version": await client.version(),
                "limits": vars(limits), "interval": await client.slow_bit_interval(),
                "closed_inside": client.closed}


async def connect(address):
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


async def fifty_jobs_half_cancelled(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        jobs = [await client.slow(100) for _ in range(50)]  # 2 s each
        tasks = await tasks_awaiting(jobs)
        for task in tasks[:25]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for job in jobs:
            await job.wait()
        return {"cancelled": [type(r).__name__ for r in results[:25]],
                "numbers": results[25:], "paths": [job.path for job in jobs],
                "states": [job.state for job in jobs]}


async def shield(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.slow(20)
        shielded = asyncio.shield(job)
        shielded.cancel()
        cancelled = await async_outcome(shielded)
        return {"awaiter": cancelled, "value": await job, "state": job.state}


async def two_awaiters(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.slow(200)
        first, second = await tasks_awaiting([job, job])
        first.cancel()
        outcomes = [await async_outcome(first), await async_outcome(second)]
        await job.wait()
        return {"outcomes": [o["error"]["class"] for o in outcomes], "state": job.state,
                "daemon": [i.state for i in await client.jobs() if i.path == job.path]}


async def wait_for_timeout(address):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.slow(200)
        timed_out = await async_outcome(asyncio.wait_for(job, 0.2))
        await job.wait()
        return {"timed_out": timed_out["error"]["class"], "state": job.state}


async def job_methods(address):
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
        ran = asyncio.Event()
        job.add_done_callback(lambda j: (late.append(j.ready), ran.set()))
        await asyncio.wait_for(ran.wait(), 10)  # it runs soon, in the loop
        return {"early": early, "ends": ends, "late": late, "steps": steps, "updates": updates,
                "value": job.value, "result": await job.result(1),
                "listed": (await job.info()).state}


async def _value(job):
    return job.value


async def cancel_and_expiry(address):
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


async def admin(address, interactive):
    from randomd.client import aio
    async with aio.Client(address=address, interactive=interactive) as client:
        return [(await async_outcome(coro))["error"] for coro in (
            client.cancel_all(), client.reload(), client.set_slow_bit_interval(0.5))]


async def set_interval_as_root(address, seconds, restore):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        await client.set_slow_bit_interval(seconds)
        value = await client.slow_bit_interval()
        await client.set_slow_bit_interval(restore)
        return value


async def close_while_awaiting(address):
    from randomd.client import aio
    client = await aio.Client.connect(address=address)
    job = await client.slow(200)
    awaiting, waiting = await tasks_awaiting([async_outcome(job), async_outcome(job.wait())])
    await client.close()
    return {"awaiting": (await awaiting)["error"]["class"],
            "waiting": (await waiting)["error"]["class"],
            "call": (await async_outcome(client.quick(1)))["error"]["class"],
            "ready": job.ready}


async def not_connected(address):
    from randomd.client import aio
    return (await async_outcome(aio.Client(address=address).quick(1)))["error"]["class"]


async def attach(address, job_id):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.job(job_id)
        return {"value": await async_outcome(job), "state": job.state}


async def collect(address, job_id):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        job = await client.job(job_id)
        error = await async_outcome(job.collect())
        return {"error": error["error"], "ready": job.ready}


