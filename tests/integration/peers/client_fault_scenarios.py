"""Scenarios of randomd.client when randomd or the bus fails, run by test_client_faults.py.

Each is a function (address, *args) that run_scenario.py calls in a process
of randomd-test, on the bus library the test's randomd runs on; most emit()
an event and wait to proceed() while the test kills, stops or restarts
randomd.  The sections follow test_client_faults.py's.
"""

from __future__ import annotations

import asyncio
import time

from peers.scenario import emit, outcome, proceed

# -- randomd leaves the bus --------------------------------------------------

def job_lost(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(200)  # 4 s
        emit(job.id)
        proceed()  # randomd is being killed
        started = time.monotonic()
        value = outcome(lambda: job.value)
        return {"value": value, "after": time.monotonic() - started, "state": job.state,
                "ready": job.ready}


async def job_lost_aio(address):
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


def attached_job_lost(address, job_id):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.job(job_id)
        emit("attached")
        return outcome(lambda: job.value)


def start_and_hold(address):
    from randomd.client import Client
    with Client(address=address) as client:
        emit(client.slow(200).id)
        proceed()


def restart(address):
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


def stopping(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(200)
        emit(job.id)
        return outcome(lambda: job.value)


# -- no daemon, no bus, no answer -------------------------------------------------

def no_daemon(address):
    from randomd.client import Client
    with Client(address=address) as client:
        return [outcome(lambda: client.quick(8)), outcome(lambda: client.slow(8)),
                outcome(lambda: client.version)]


def no_bus(address):
    from randomd.client import Client, aio

    async def connect():
        await aio.Client.connect(address=address)

    return [outcome(lambda: Client(address=address)), outcome(lambda: asyncio.run(connect()))]


def timeout(address):
    from randomd.client import Client
    with Client(address=address, timeout=0.3) as client:
        emit("connected")
        proceed()  # randomd is stopped (SIGSTOP)
        started = time.monotonic()
        result = outcome(lambda: client.quick(8))
        return {"error": result["error"], "after": time.monotonic() - started}


def slow_job_outlives_the_timeout(address):
    from randomd.client import Client
    with Client(address=address, timeout=0.5) as client:
        job = client.slow(60)  # 1.2 s at 0.02 s per bit: longer than the call timeout
        return {"value": job.value, "state": job.state}


# -- polkit -------------------------------------------------------------------

def slow_refused(address):
    from randomd.client import Client
    with Client(address=address) as client:
        return outcome(lambda: client.slow(8))


# -- load ------------------------------------------------------------------------

def many_jobs(address, count):
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


async def many_jobs_aio(address, count):
    from randomd.client import aio
    async with aio.Client(address=address) as client:
        jobs = await asyncio.gather(*(client.slow(1) for _ in range(count)))
        async with asyncio.timeout(30):
            values = await asyncio.gather(*jobs)
        return {"values": sorted(set(values)), "count": len(values),
                "distinct_jobs": len({job.path for job in jobs})}


