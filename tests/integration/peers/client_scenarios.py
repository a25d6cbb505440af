"""Scenarios of randomd.client, the blocking client, run by test_client.py.

Each is a function (address, *args) that run_scenario.py calls in a process
of randomd-test (or root, where the test says why), on the bus library the
test's randomd runs on; test_client_aio.py also starts start_and_hold and
start_and_leave.  The sections follow test_client.py's.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from peers.scenario import emit, outcome, proceed

# -- numbers and properties ---------------------------------------------------

def quick(address, bits):
    from randomd.client import Client
    with Client(address=address) as client:
        return [client.quick(bits) for _ in range(20)]


def random_bytes(address, count):
    from randomd.client import Client
    with Client(address=address) as client:
        data = client.bytes(count)
        return [type(data).__name__, data.hex()]


def refused_argument(address, member, value):
    from randomd.client import Client
    with Client(address=address) as client:
        return outcome(lambda: getattr(client, member)(value))


def properties(address):
    from randomd.client import Client, Limits
    with Client(address=address) as client:
        limits = client.limits
        assert isinstance(limits, Limits)
        return {"version": client.version, "limits": vars(limits),
                "interval": client.slow_bit_interval}


def set_interval(address, seconds, interactive):
    from randomd.client import Client
    with Client(address=address, interactive=interactive) as client:
        def assign():
            client.slow_bit_interval = seconds
            return client.slow_bit_interval
        return outcome(assign)


def admin(address, member, interactive):
    from randomd.client import Client
    with Client(address=address, interactive=interactive) as client:
        return outcome(getattr(client, member))


def cancel_all_as_root(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(200)
        client.cancel_all()
        return outcome(lambda: job.value)


# -- jobs ------------------------------------------------------------------------

def slow(address, bits):
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


def wait_and_result(address):
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


def result(address):
    from randomd.client import Client
    with Client(address=address) as client:
        return client.slow(4).result(timeout=30)


def callbacks(address, bits):
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


def callbacks_after_quick(address):
    """quick() may run the client's loop in this thread; callbacks still run in the client's."""
    from randomd.client import Client
    with Client(address=address) as client:
        numbers = [client.quick(8) for _ in range(3)]
        job = client.slow(2)
        threads = []
        done = threading.Event()

        def callback(_job):
            threads.append(threading.current_thread().name)
            done.set()

        job.add_callback(callback)
        done.wait(10)
        numbers.append(client.quick(8))
        return {"threads": threads, "main": threading.current_thread().name, "numbers": numbers}


def quick_from_a_coroutine(address):
    """The blocking client called from a coroutine of the program's own asyncio loop."""
    import asyncio

    from randomd.client import Client
    with Client(address=address) as client:
        async def main():
            return client.quick(8)
        return asyncio.run(main())


def blocking_call_in_callback(address):
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


def set_expiry(address):
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


def set_expiry_after_end(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(2)
        job.set_expiry(0.5)
        value = job.value
        time.sleep(1)  # past the expiry: nothing may change (not a synchronisation)
        return {"value": value, "state": job.state, "expired": job.expired}


def cancel(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(200)
        job.cancel()
        state, ready = job.state, job.ready
        job.cancel()  # a no-op for an ended job
        return {"state": state, "ready": ready, "value": outcome(lambda: job.value),
                "daemon": {info.path: info.state for info in client.jobs()}[job.path]}


def quota(address, count):
    from randomd.client import Client
    with Client(address=address) as client:
        jobs = [client.slow(200) for _ in range(count)]
        refused = outcome(lambda: client.slow(200))
        for job in jobs:
            job.cancel()
        return refused


def jobs(address):
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


def attach_own(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(4)
        same = [client.job(job.id) is job, client.job(str(job.id)) is job,
                client.job(job.path) is job]
        return {"same": same, "value": job.value}


def unknown_job(address, ref):
    from randomd.client import Client
    with Client(address=address) as client:
        return outcome(lambda: client.job(ref))


def start_and_hold(address, bits):
    """Start a job, say its id, and keep the connection until told to collect it."""
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(bits)
        emit(job.id)
        proceed()
        return job.value


def start_and_leave(address, bits):
    """Start a job, say its id, and leave the bus at once (the job should run on)."""
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(bits)
    return job.id


def attach(address, job_id):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.job(job_id)
        steps = []
        job.on_progress(lambda j: steps.append(j.bits_done))
        value = outcome(lambda: job.value)
        return {"value": value, "state": job.state, "ready": job.ready, "steps": steps,
                "error": job.error}


def attach_and_cancel(address, job_id):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.job(job_id)
        job.cancel()
        return job.state


def close_while_waiting(address):
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


def threads(address, threads, calls):
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


def forged_finished(address):
    from randomd.client import Client
    with Client(address=address) as client:
        job = client.slow(100)  # 2 s
        emit({"path": job.path, "unique_name": client._conn.bus.unique_name})
        proceed()  # the test has sent a Finished of its own
        client.quick(1)  # a round trip: what the bus had for us is read by now
        forged = job.ready
        return {"forged_ended_it": forged, "value": job.value, "state": job.state}


