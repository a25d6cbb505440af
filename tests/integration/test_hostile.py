"""Hostile clients: randomd keeps serving everyone else, holds its quotas, and grows nothing.

The attackers run as the unprivileged user randomd-test, in subprocesses
(peers/attacker.py): one that starts jobs and never reads its socket, one
that opens a thousand connections, one that floods Slow, one that sends
messages of 32 MiB that are costly to unmarshal.
randomd runs next to a real polkitd (Slow needs polkit for everyone but
root).  The bystanders are root, in this process, whose Quick latency is
measured, and `nobody`, with busctl, who must still get Quick answers and
Slow jobs of its own.

"Bounded" is generous on purpose: the tests prove that others are served,
not how fast; the measured figures are printed (pytest -s) for the record.
Jobs outlive the connections that started them (API.md "Lifetime"): the
attackers' jobs, and nobody's, run on once their clients left, until root
cancels them all.  Also here: a forged NameOwnerChanged changes nothing,
and the results of jobs started and cancelled in a loop stay bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import time

import harness
import pytest
from clients import call, error_of, get_property, wait_until

from randomd import api, dbus
from randomd.dbus import Message, MessageType

ATTACKER = harness.TEST_USER
MAX_JOBS_PER_USER = 16
# Jobs run until cancelled; finished results leave at once, so that the job
# table is empty once every client has left.
CONFIG = f"SlowBitInterval = 60\nMaxJobsPerUser = {MAX_JOBS_PER_USER}\nResultTTL = 0\n"
# A bystander's call must be answered within this, under any attack here.
BYSTANDER_BOUND = 30.0
# What randomd may grow by during one attack, once its clients have left.
RSS_GROWTH_BOUND_KB = 32 * 1024
ATTACKER_PROGRAM = harness.REPO / "tests/integration/peers/attacker.py"
UNPRIVILEGED = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
FIGURES: dict[str, str] = {}


# -- measuring randomd -------------------------------------------------------


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Usage:
    """randomd's RSS and open fds before an attack, compared after it.

    randomd opens a socket for a moment to send sd_notify STATUS= lines:
    its fd count is the lowest of a few readings, and after an attack the
    test waits for it to come back.
    """

    def __init__(self, daemon: harness.Randomd) -> None:
        self.pid = daemon.process.pid
        self.rss = rss_kb(self.pid)
        self.fds = min(_sample(lambda: fd_count(self.pid)))

    async def assert_bounded(self, name: str) -> None:
        rss = rss_kb(self.pid)
        try:
            await wait_until(lambda: _at_most(fd_count(self.pid), self.fds),
                             "randomd's fds to come back")
        finally:
            fds = fd_count(self.pid)
            FIGURES[f"{name}: randomd RSS/fds"] = (f"{self.rss} kB / {self.fds} before, "
                                                   f"{rss} kB / {fds} after")
        assert rss - self.rss <= RSS_GROWTH_BOUND_KB, f"randomd grew from {self.rss} to {rss} kB"


def _sample(read, count: int = 5) -> list[int]:
    values = []
    for _ in range(count):
        values.append(read())
        time.sleep(0.02)
    return values


async def _at_most(value: int, bound: int) -> bool:
    return value <= bound


class Bystander:
    """Root calling Quick in a loop while an attack runs; keeps the latencies.

    With *pause*, it waits that long between calls (a light user).
    """

    def __init__(self, connection, pause: float = 0.0) -> None:
        self._connection = connection
        self._pause = pause
        self.latencies: list[float] = []
        self._stopping = False
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        # Stopped by a flag, not by cancelling: Python 3.11's wait_for may
        # swallow a cancellation that arrives as its call completes.
        while not self._stopping:
            started = time.monotonic()
            (number,) = await asyncio.wait_for(call(self._connection, "Quick", "u", [16]),
                                               BYSTANDER_BOUND)
            self.latencies.append(time.monotonic() - started)
            assert 0 <= int(number) < 2**16
            if self._pause:
                await asyncio.sleep(self._pause)

    def check(self) -> int:
        """How many calls were answered so far; raises what failed."""
        if self._task.done():
            self._task.result()
        return len(self.latencies)

    async def stop(self, name: str) -> None:
        """Stop; fail if a call failed or none was answered; note the figures."""
        self._stopping = True
        await self._task
        assert self.latencies, "the bystander got no answer at all"
        FIGURES[f"{name}: bystander Quick latency"] = (
            f"{len(self.latencies)} calls, median {statistics.median(self.latencies) * 1000:.1f}"
            f" ms, max {max(self.latencies) * 1000:.1f} ms")


async def busctl_as_nobody(bus: harness.SystemBus, *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(
        subprocess.run, [*UNPRIVILEGED, "busctl", f"--address={bus.address}", "call",
                         api.BUS_NAME, api.MANAGER_PATH, api.MANAGER_INTERFACE, *args],
        capture_output=True, text=True, timeout=BYSTANDER_BOUND)


async def nobody_is_served(bus: harness.SystemBus, name: str) -> None:
    """`nobody` gets a Quick number and starts a Slow job of its own."""
    started = time.monotonic()
    quick = await busctl_as_nobody(bus, "Quick", "u", "8")
    assert quick.stdout.startswith('s "'), quick.stderr
    slow = await busctl_as_nobody(bus, "Slow", "u", "8")
    assert slow.stdout.startswith(f'o "{api.JOBS_PATH}/'), slow.stderr
    FIGURES[f"{name}: nobody's busctl Quick + Slow"] = f"{time.monotonic() - started:.2f} s"


async def job_table(connection) -> dict:
    (objects,) = await call(connection, "GetManagedObjects",
                            interface="org.freedesktop.DBus.ObjectManager")
    return objects


async def active_jobs(connection) -> int:
    return await get_property(connection, "ActiveJobs")


async def clients_jobs_run_on_until_cancelled(connection, count: int) -> None:
    """The *count* jobs of clients that left are still running; root cancels them all.

    ResultTTL is 0: once they ended, the job table is empty.
    """
    assert await active_jobs(connection) == count
    await call(connection, "CancelAll")
    await wait_until(lambda: _equals(active_jobs(connection), 0), "the cancelled jobs to end")
    assert await job_table(connection) == {}


# -- the attackers (peers/attacker.py), as subprocesses of another uid --------


class Attacker:
    """peers/attacker.py run by ATTACKER: it prints JSON lines and stops at EOF."""

    def __init__(self, bus: harness.SystemBus, *args: str) -> None:
        argv = harness.as_user(ATTACKER, [harness.PYTHON, str(ATTACKER_PROGRAM),
                                          bus.address, *args])
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(harness.REPO)}
        self.process = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, cwd="/")

    async def report(self, timeout: float = 60) -> dict:
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), timeout)
        if not line:
            raise AssertionError(f"the attacker exited with status {self.process.wait()}")
        return json.loads(line)

    async def leave(self) -> None:
        """Close its stdin: it exits, and its connections close."""
        self.process.stdin.close()
        await asyncio.to_thread(self.process.wait, harness.TIMEOUT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(harness.TIMEOUT)


# -- fixtures ----------------------------------------------------------------


# A short bound on polkit checks (a test-only setting): a check that waits
# longer than this behind the attacker's is refused, which the tests can see.
POLKIT_BOUND = "2"


@pytest.fixture(scope="module")
def daemon(polkit_bus, polkitd, library):
    randomd = harness.Randomd(polkit_bus, library, CONFIG,
                              env={"RANDOMD_POLKIT_TIMEOUT": POLKIT_BOUND}).wait_ready()
    yield randomd
    randomd.stop()


@pytest.fixture
async def root(daemon):
    connection = await dbus.connect(daemon.bus.address)
    yield connection
    connection.disconnect()


@pytest.fixture
def attackers():
    started: list[Attacker] = []

    def start(bus: harness.SystemBus, *args: str) -> Attacker:
        attacker = Attacker(bus, *args)
        started.append(attacker)
        return attacker

    yield start
    for attacker in started:
        attacker.kill()


@pytest.fixture(autouse=True)
def figures(request):
    """Print what a test measured (shown with pytest -s, and kept for the report)."""
    FIGURES.clear()
    yield
    print()
    for name, value in FIGURES.items():
        print(f"[{request.node.name}] {name}: {value}")


# -- the tests -----------------------------------------------------------------


async def test_a_client_that_stops_reading_leaves_others_served(daemon, root, attackers):
    usage = Usage(daemon)
    bystander = Bystander(root)
    attacker = attackers(daemon.bus, "stops-reading", "24", "200")
    report = await attacker.report()
    # It read the answers to its first calls, until it held its quota of jobs.
    assert report["jobs"] == MAX_JOBS_PER_USER, report
    await wait_until(lambda: _equals(active_jobs(root), MAX_JOBS_PER_USER),
                     "the attacker's jobs to be counted")
    await nobody_is_served(daemon.bus, "stops-reading")
    await wait_until(lambda: _at_least(bystander, 20), "the bystander's calls")
    await bystander.stop("stops-reading")
    await attacker.leave()
    await clients_jobs_run_on_until_cancelled(root, MAX_JOBS_PER_USER + 1)  # and nobody's
    await usage.assert_bounded("stops-reading")
    FIGURES["stops-reading: the attacker"] = (f"started {report['jobs']} jobs, then sent "
                                              f"{report['unread']} calls and read nothing")


async def test_a_thousand_connections_from_one_user_leave_others_served(daemon, root,
                                                                        attackers):
    usage = Usage(daemon)
    bystander = Bystander(root)
    attacker = attackers(daemon.bus, "connections", "1000")
    opened = await attacker.report()
    FIGURES["connections"] = (f"{opened['connected']} of 1000 connected, the bus refused "
                              f"{opened['refused']}")
    assert opened["connected"] + opened["refused"] == 1000 and opened["connected"] >= 100
    # Every connection asked for a job: the quota holds across connections.
    await wait_until(lambda: _equals(active_jobs(root), MAX_JOBS_PER_USER),
                     "the attacker's jobs to start", timeout=30)
    await nobody_is_served(daemon.bus, "connections")
    await wait_until(lambda: _at_least(bystander, 20), "the bystander's calls")
    await bystander.stop("connections")
    # nobody's busctl has left, its job runs on beside the attacker's.
    assert await active_jobs(root) == MAX_JOBS_PER_USER + 1
    await attacker.leave()
    await clients_jobs_run_on_until_cancelled(root, MAX_JOBS_PER_USER + 1)
    await usage.assert_bounded("connections")


async def test_a_slow_flood_holds_the_quota_of_its_uid_and_leaves_others_served(
        daemon, root, attackers):
    usage = Usage(daemon)
    attacker = attackers(daemon.bus, "flood", "30", "30", "3")
    bystander = Bystander(root)
    # Once the attacker holds its quota, its calls queue for polkit behind each other.
    await wait_until(lambda: _equals(active_jobs(root), MAX_JOBS_PER_USER),
                     "the attacker's jobs to start", timeout=30)
    await nobody_is_served(daemon.bus, "flood")
    counts = await attacker.report()
    await bystander.stop("flood")
    FIGURES["flood: the attacker's replies"] = json.dumps(counts)
    assert counts.pop("ok") == MAX_JOBS_PER_USER
    assert counts.pop(api.ERROR_PREFIX + "QuotaExceeded") > 0
    # A check that waits too long behind the attacker's own is refused; a
    # check never fails because randomd exceeded the bus's limits.
    refused = counts.pop("org.freedesktop.DBus.Error.AccessDenied", {})
    assert not counts, counts
    assert all("did not answer" in text for text in refused), refused
    await attacker.leave()
    await clients_jobs_run_on_until_cancelled(root, MAX_JOBS_PER_USER + 1)  # and nobody's
    await usage.assert_bounded("flood")


BIG_MESSAGE_MIB = 8
BIG_ROUNDS = 6


async def test_messages_costly_to_unmarshal_leave_others_served_and_memory_bounded(
        daemon, root, attackers):
    """Six 8 MiB calls of 2 million integers, one after the other.

    The bus takes messages up to 32 MiB; the library reads a whole message
    and unmarshals it before randomd sees it, holding the loop meanwhile,
    so the bystander waits that long.  randomd's memory may hold a message
    or two (read buffers, garbage not yet collected) but must not grow
    with each one.  The bystander is a light user here: heavy traffic would
    make Python collect garbage often enough to hide a leak.
    """
    bystander = Bystander(root, pause=0.1)
    attacker = attackers(daemon.bus, "big", str(BIG_ROUNDS), str(BIG_MESSAGE_MIB))
    rss = []
    for _ in range(BIG_ROUNDS):
        answered = await attacker.report(timeout=120)
        assert answered["error"] == "org.freedesktop.DBus.Error.InvalidArgs", answered
        rss.append(rss_kb(daemon.process.pid))
    await bystander.stop("big messages")
    await attacker.leave()
    FIGURES["big messages: randomd's RSS after each (kB)"] = ", ".join(map(str, rss))
    FIGURES["big messages: randomd's answer to the last"] = f"{answered['seconds']:.1f} s"
    assert max(rss) - rss[0] <= 4 * BIG_MESSAGE_MIB * 1024, f"randomd's RSS grew: {rss} kB"


async def test_a_forged_name_owner_changed_signal_changes_nothing(daemon, root):
    """Anyone may send randomd a signal; only the bus's own NameOwnerChanged counts."""
    (path,) = await call(root, "Slow", "u", [8])
    forger = await dbus.connect(daemon.bus.address)
    try:
        forger.send(Message(message_type=MessageType.SIGNAL, destination=api.BUS_NAME,
                            path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                            member="NameOwnerChanged", signature="sss",
                            body=[root.unique_name, root.unique_name, ""]))
        # randomd reads the forger's messages in order: once this is answered,
        # the signal was handled.
        await call(forger, "Ping", path="/", interface="org.freedesktop.DBus.Peer")
    finally:
        forger.disconnect()
    assert await get_property(root, "State", api.JOB_INTERFACE, path) == "running"
    assert await get_property(root, "OwnerConnected", api.JOB_INTERFACE, path) is True
    await call(root, "Cancel", path=path, interface=api.JOB_INTERFACE)


async def test_results_of_jobs_started_and_cancelled_in_a_loop_stay_bounded(start_randomd):
    """Each uid keeps at most 4 x MaxJobsPerUser finished results, oldest out first.

    Without that bound a client could grow the table for a whole ResultTTL
    (60 s) at thousands of jobs a second, until GetManagedObjects no longer
    fit in a message and the bus dropped randomd.
    """
    daemon = start_randomd("SlowBitInterval = 60\nMaxJobsPerUser = 4\n").wait_ready()
    usage = Usage(daemon)
    connection = await dbus.connect(daemon.bus.address)
    try:
        for _ in range(100):
            (path,) = await call(connection, "Slow", "u", [8])
            await call(connection, "Cancel", path=path, interface=api.JOB_INTERFACE)
        table = await job_table(connection)
        assert len(table) == 16
        assert path in table and api.job_path(84) not in table and api.job_path(85) in table
        error = await error_of(call(connection, "Wait", path=api.job_path(1),
                                    interface=api.JOB_INTERFACE))
        assert error.type == api.ERROR_PREFIX + "NoSuchJob"
        assert await get_property(connection, "JobsStarted") == 100
    finally:
        connection.disconnect()
    await usage.assert_bounded("start-and-cancel loop")


async def _equals(awaitable, value) -> bool:
    return await awaitable == value


async def _at_least(bystander: Bystander, count: int) -> bool:
    return bystander.check() >= count
