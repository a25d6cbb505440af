"""Soak: 50 clients mixing every call, with disconnects, for a bounded time.

Each client (a root connection) loops over Quick, Bytes, Slow, Wait, Cancel
and, now and then, drops its connection with jobs running and comes back as
a new one.  Checked:

- no error but QuotaExceeded (all clients are root: they share one
  MaxJobsPerUser), and Cancelled for a Wait on a job the client cancelled;
- every job accepted ends with exactly one Finished, received by its owner
  only, agreeing with Wait and with Cancel; the running jobs of a
  connection that left on purpose run on to their end, heard of by no one
  (their Finished goes to the connection that left);
- afterwards the job table is empty, and randomd's RSS and open fds are
  where they were after the warm-up.

RANDOMD_SOAK_SECONDS sets the duration (default 20, per bus library); the
figures are printed (pytest -s).
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time

import harness
import pytest
from clients import call, get_property, wait_until

from randomd import api, dbus
from randomd.dbus import DBusError, MessageType

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("RANDOMD_SOAK_SECONDS", "20"))
CLIENTS = 50
WARM_UP = min(3.0, SECONDS / 4)
CONFIG = "SlowBitInterval = 0.02\nMaxJobsPerUser = 64\nResultTTL = 1\n"
QUOTA = api.ERROR_PREFIX + "QuotaExceeded"
CANCELLED = api.ERROR_PREFIX + "Cancelled"
RSS_GROWTH_BOUND_KB = 16 * 1024


class Client:
    """One soaking client: a connection, its jobs, and the Finished signals it got."""

    def __init__(self, address: str, seed: int, counts: collections.Counter) -> None:
        self._address = address
        self._random = random.Random(seed)  # the test's choices, not randomd's numbers
        self._counts = counts
        self.bus = None
        self.jobs: dict[str, dict] = {}  # path -> what the client knows of it
        self.abandoned: list[str] = []  # running jobs of connections dropped on purpose
        self.checked = 0  # jobs seen to end with exactly one Finished
        self.stray: list = []  # Finished signals for jobs it does not own
        self.early: dict[str, list] = {}  # Finished signals read before the reply to Slow

    async def connect(self) -> None:
        self.bus = await dbus.connect(self._address)
        mine = self.jobs
        bus = self.bus

        def on_message(msg) -> bool:
            if bus is not self.bus:
                return False  # dropped on purpose: what it still reads does not count
            if msg.message_type == MessageType.SIGNAL and msg.member == "Finished":
                job = mine.get(msg.path)
                if msg.destination != bus.unique_name or (job and job["bus"] is not bus):
                    self.stray.append((msg.path, msg.destination, msg.body))
                elif job is None:
                    # Read in the same burst as the reply to Slow, whose
                    # caller has not run yet: slow() claims it.
                    self.early.setdefault(msg.path, []).append(msg.body)
                else:
                    job["finished"].append(msg.body)
                    job["done"].set()
            return False

        self.bus.add_message_handler(on_message)

    async def run(self, deadline: float) -> None:
        await self.connect()
        while time.monotonic() < deadline:
            action = self._random.choices(
                ["quick", "bytes", "slow", "wait", "cancel", "leave"],
                weights=[30, 20, 30, 10, 9, 1])[0]
            await getattr(self, action)()
            self._counts[action] += 1
            await asyncio.sleep(self._random.uniform(0, 0.05))  # pacing, not waiting

    def running(self) -> list[str]:
        return [p for p, j in self.jobs.items() if j["bus"] is self.bus and not j["finished"]]

    async def quick(self) -> None:
        bits = self._random.randint(1, 4096)
        (number,) = await call(self.bus, "Quick", "u", [bits])
        assert 0 <= int(number) < 2**bits

    async def bytes(self) -> None:
        count = self._random.randint(1, 4096)
        (data,) = await call(self.bus, "Bytes", "u", [count])
        assert len(data) == count

    async def slow(self) -> None:
        try:
            (path,) = await call(self.bus, "Slow", "u", [self._random.randint(1, 32)])
        except DBusError as error:
            assert error.type == QUOTA, (error.type, error.text)
            self._counts["quota"] += 1
            return
        assert path not in self.jobs, f"job path {path} given twice"
        job = self.jobs[path] = {"bus": self.bus, "finished": self.early.pop(path, []),
                                 "done": asyncio.Event(), "waited": None, "cancelled": False}
        if job["finished"]:
            job["done"].set()

    async def wait(self) -> None:
        if not (running := self.running()):
            return
        path = self._random.choice(running)
        job = self.jobs[path]
        try:
            (number,) = await call(self.bus, "Wait", path=path, interface=api.JOB_INTERFACE)
            job["waited"] = number
        except DBusError as error:
            assert error.type == CANCELLED and job["cancelled"], (error.type, error.text)

    async def cancel(self) -> None:
        if not (running := self.running()):
            return
        path = self._random.choice(running)
        self.jobs[path]["cancelled"] = True
        await call(self.bus, "Cancel", path=path, interface=api.JOB_INTERFACE)

    async def leave(self) -> None:
        """Drop the connection with its jobs, and come back as a new one.

        Its finished jobs are checked now; its running ones run on in randomd
        (they hold the uid's quota until they end), and nobody hears of them
        again.
        """
        leaving, self.bus = self.bus, None  # what it still reads no longer counts
        for path, job in list(self.jobs.items()):
            if job["finished"]:
                self._check_job(path, job)
            else:
                self.abandoned.append(path)
            del self.jobs[path]
        leaving.disconnect()
        await self.connect()

    async def check(self) -> None:
        """Every job of the current connection ends with one Finished."""
        for path, job in self.jobs.items():
            try:
                await asyncio.wait_for(job["done"].wait(), harness.TIMEOUT)
            except TimeoutError:
                raise AssertionError(f"no Finished for {path}") from None
        for path, job in self.jobs.items():
            self._check_job(path, job)
        assert not self.stray and not self.early, (self.stray, self.early, self.abandoned)

    def _check_job(self, path: str, job: dict) -> None:
        assert len(job["finished"]) == 1, (path, job["finished"])
        state, number, error = job["finished"][0]
        if job["waited"] is not None:
            assert (state, number) == ("completed", job["waited"]), (path, job)
        if state == "cancelled":
            assert job["cancelled"] and (number, error) == ("", CANCELLED), (path, job)
        else:
            assert (state, error) == ("completed", "") and number.isdigit(), (path, job)
        self.checked += 1


async def test_fifty_clients_mixing_everything_hold_their_invariants(start_randomd, library):
    daemon = start_randomd(CONFIG).wait_ready()
    pid = daemon.process.pid
    counts: collections.Counter = collections.Counter()
    clients = [Client(daemon.bus.address, seed, counts) for seed in range(CLIENTS)]
    started = time.monotonic()
    soak = asyncio.ensure_future(asyncio.gather(
        *(client.run(started + SECONDS) for client in clients)))
    # The warm-up: Python's and the libraries' caches fill, the job table reaches its size.
    done, _ = await asyncio.wait([soak], timeout=WARM_UP)
    if done:
        soak.result()
    warm_rss, warm_fds = harness.rss_kb(pid), harness.fd_count(pid)
    await asyncio.wait_for(soak, SECONDS + 60)

    for client in clients:
        await client.check()
    accepted = sum(client.checked for client in clients)
    abandoned = [path for client in clients for path in client.abandoned]
    observer = await dbus.connect(daemon.bus.address)
    try:
        for client in clients:
            client.bus.disconnect()
        await wait_until(lambda: _no_jobs(observer), "the job table to empty", timeout=30)
        assert await get_property(observer, "ActiveJobs") == 0
        started_jobs = await get_property(observer, "JobsStarted")
    finally:
        observer.disconnect()
    await wait_until(lambda: harness.fds_at_most(pid, warm_fds), "randomd's fds to come back",
                     timeout=30)
    end_rss, end_fds = harness.rss_kb(pid), harness.fd_count(pid)
    print(f"\nsoak ({SECONDS:g} s, {CLIENTS} clients, randomd on {library}): "
          f"{dict(counts)}; {started_jobs} jobs started, {accepted} checked for exactly one "
          f"Finished, {len(abandoned)} left running by their connection; randomd RSS "
          f"{warm_rss} kB after warm-up, {end_rss} kB at the end; fds {warm_fds} -> {end_fds}")
    assert started_jobs == accepted + len(abandoned)
    assert counts["quota"] > 0 and counts["leave"] > 0 and counts["cancel"] > 0
    assert end_rss - warm_rss <= RSS_GROWTH_BOUND_KB
    assert "Traceback" not in daemon.stderr() and "ERROR" not in daemon.stderr()


async def _no_jobs(connection) -> bool:
    (objects,) = await call(connection, "GetManagedObjects",
                            interface="org.freedesktop.DBus.ObjectManager")
    return not objects
