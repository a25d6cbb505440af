"""A job outlives the connection that started it (API.md "Lifetime", issue 12).

With the stock tools every call is its own connection: `busctl call ... Slow`
leaves the bus before anyone can Wait.  So a job belongs to the uid that
started it: when the starting connection leaves, the job runs on,
OwnerConnected turns false (with PropertiesChanged), and any connection of
that uid may Wait for it or Cancel it; others need manage-jobs as before.

randomd runs as the randomd user on a policy-enforcing bus with a real
polkitd (no rules: slow is granted to everyone, manage-jobs needs an
administrator).  Clients are busctl, gdbus and dbus-send run as root and as
randomd-test, polkit_harness.UserClient connections of randomd-test (for
exact error names) and root connections in this process.  Also here: the
quota holds across connections that left, memory and the job table stay
bounded under a start-and-disconnect loop, and idle exit waits for a call
whose polkit check waits for a password.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time

import harness
import pytest
from clients import SignalRecorder, add_match, call, get_property, wait_until
from polkit_harness import INTERACTIVE_REQUIRED, Agent, Polkitd, UserClient, policy_bus, reply_of

from randomd import api, dbus
from randomd.dbus import DBusError

USER = harness.TEST_USER
INTERVAL = 0.02  # SlowBitInterval of this module's randomd
MAX_JOBS_PER_USER = 4
CONFIG = f"SlowBitInterval = {INTERVAL}\nMaxJobsPerUser = {MAX_JOBS_PER_USER}\n"
LONG_BITS = 256  # about 5 s at INTERVAL: running for as long as a test looks at it
ERROR = api.ERROR_PREFIX
# Longer than any job here and than the tools' 25 s default: a Wait lasts as long as its job.
WAIT_TIMEOUT = 60


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(polkit_bus, polkitd, library):
    randomd = harness.Randomd(polkit_bus, library, CONFIG).wait_ready()
    yield randomd
    randomd.stop()


@pytest.fixture
async def root(daemon):
    """A root connection; after the test it cancels every job, for the next test's quota."""
    connection = await dbus.connect(daemon.bus.address)
    yield connection
    await call(connection, "CancelAll")
    await wait_until(lambda: _equals(get_property(connection, "ActiveJobs"), 0),
                     "the test's jobs to end")
    connection.disconnect()


@pytest.fixture
async def user_clients():
    """UserClients of randomd-test opened by a test, closed after it."""
    opened: list[UserClient] = []

    async def open_one(bus: harness.SystemBus) -> UserClient:
        client = await UserClient.start(bus, USER)
        opened.append(client)
        return client

    yield open_one
    for client in opened:
        await client.close()


# -- the stock tools, one process per call ---------------------------------------


def busctl(bus: harness.SystemBus, *args: str, user: str | None = None,
           check: bool = True) -> subprocess.CompletedProcess:
    """`busctl call ARGS` against randomd, as a user types it (WAIT_TIMEOUT for Wait)."""
    argv = harness.as_user(user, ["busctl", f"--address={bus.address}",
                                  f"--timeout={WAIT_TIMEOUT}", "call", api.BUS_NAME, *args])
    return subprocess.run(argv, capture_output=True, text=True, timeout=WAIT_TIMEOUT + 10,
                          check=check)


def busctl_slow(bus: harness.SystemBus, bits: int, user: str | None = None) -> str:
    """Start a job with busctl, which leaves the bus at once; its path."""
    result = busctl(bus, api.MANAGER_PATH, api.MANAGER_INTERFACE, "Slow", "u", str(bits),
                    user=user)
    match = re.fullmatch(r'o "(/org/randomd/Random1/jobs/[1-9][0-9]*)"\n', result.stdout)
    assert match, result
    return match.group(1)


def busctl_job(bus: harness.SystemBus, path: str, member: str, user: str | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
    return busctl(bus, path, api.JOB_INTERFACE, member, user=user, check=check)


def tool(bus: harness.SystemBus, argv: list[str], user: str | None) -> str:
    """Run a D-Bus tool whose system bus is *bus*, as *user*; its output."""
    result = subprocess.run(harness.as_user(user, argv), env=bus.env(), capture_output=True,
                            text=True, timeout=WAIT_TIMEOUT + 10)
    assert result.returncode == 0, result
    return result.stdout


async def job_property(connection, path: str, name: str):
    return await get_property(connection, name, api.JOB_INTERFACE, path)


async def _equals(awaitable, value) -> bool:
    return await awaitable == value


# -- Slow from one process, Wait from the next --------------------------------------


@pytest.mark.parametrize("user", [None, USER], ids=["root", "user"])
def test_busctl_wait_in_a_new_process_returns_the_number_of_a_busctl_slow(daemon, user):
    """The README's example, as printed."""
    path = busctl_slow(daemon.bus, 8, user=user)
    waited = busctl_job(daemon.bus, path, "Wait", user=user)
    match = re.fullmatch(r's "([0-9]+)"\n', waited.stdout)
    assert match and int(match.group(1)) < 2**8, waited


def test_gdbus_wait_in_a_new_process_returns_the_number_of_a_gdbus_slow(daemon):
    gdbus = ["gdbus", "call", "--system", "--dest", api.BUS_NAME]
    started = tool(daemon.bus, [*gdbus, "--object-path", api.MANAGER_PATH, "--method",
                                f"{api.MANAGER_INTERFACE}.Slow", "8"], USER)
    match = re.fullmatch(r"\(objectpath '(/org/randomd/Random1/jobs/[0-9]+)',\)\n", started)
    assert match, started
    waited = tool(daemon.bus, [*gdbus, "--timeout", str(WAIT_TIMEOUT), "--object-path",
                               match.group(1), "--method", f"{api.JOB_INTERFACE}.Wait"], USER)
    number = re.fullmatch(r"\('([0-9]+)',\)\n", waited)
    assert number and int(number.group(1)) < 2**8, waited


def test_dbus_send_wait_in_a_new_process_returns_the_number_of_a_dbus_send_slow(daemon):
    send = ["dbus-send", "--system", "--print-reply", f"--dest={api.BUS_NAME}"]
    started = tool(daemon.bus, [*send, api.MANAGER_PATH, f"{api.MANAGER_INTERFACE}.Slow",
                                "uint32:8"], USER)
    match = re.search(r'object path "(/org/randomd/Random1/jobs/[0-9]+)"', started)
    assert match, started
    waited = tool(daemon.bus, [*send, f"--reply-timeout={WAIT_TIMEOUT * 1000}", match.group(1),
                               f"{api.JOB_INTERFACE}.Wait"], USER)
    number = re.search(r'string "([0-9]+)"', waited)
    assert number and int(number.group(1)) < 2**8, waited


# -- OwnerConnected ------------------------------------------------------------------


async def test_owner_connected_turns_false_when_the_starter_leaves_and_the_job_runs_on(
        daemon, root, user_clients):
    starter = await user_clients(daemon.bus)
    started = await starter.call("Slow", "u", [LONG_BITS])
    assert started.error is None, started
    (path,) = started.body
    assert await job_property(root, path, "OwnerConnected") is True
    recorder = SignalRecorder(root)
    await add_match(root, f"type='signal',member='PropertiesChanged',path='{path}'")
    await starter.close()
    changed = await recorder.wait_for(lambda m: m.member == "PropertiesChanged"
                                      and "OwnerConnected" in m.body[1])
    assert changed.body[1]["OwnerConnected"].value is False
    assert await job_property(root, path, "OwnerConnected") is False
    assert await job_property(root, path, "State") == "running"
    assert await job_property(root, path, "Owner") == starter.unique_name
    assert await job_property(root, path, "OwnerUID") == harness.ensure_user(USER).pw_uid


# -- who may use a job whose owner left ------------------------------------------------


async def test_another_uid_may_neither_wait_for_nor_cancel_a_job_whose_owner_left(
        daemon, root, user_clients):
    path = busctl_slow(daemon.bus, LONG_BITS)  # root's, and busctl has left
    other = await user_clients(daemon.bus)
    for member in ("Wait", "Cancel"):
        reply = await other.call(member, path=path, interface=api.JOB_INTERFACE)
        assert reply.error == INTERACTIVE_REQUIRED and api.ACTION_MANAGE_JOBS in reply.text, reply
    assert await job_property(root, path, "State") == "running"


async def test_a_later_connection_of_the_owners_uid_cancels_it_and_wait_answers_cancelled(
        daemon, root, user_clients):
    path = busctl_slow(daemon.bus, LONG_BITS, user=USER)
    busctl_job(daemon.bus, path, "Cancel", user=USER)  # yet another connection
    await wait_until(lambda: _equals(job_property(root, path, "State"), "cancelled"),
                     "the job to end as cancelled")
    later = await user_clients(daemon.bus)
    reply = await later.call("Wait", path=path, interface=api.JOB_INTERFACE)
    assert reply.error == ERROR + "Cancelled", reply


async def test_a_uid_whose_jobs_outlived_their_connections_holds_its_quota(
        daemon, root, user_clients):
    paths = [busctl_slow(daemon.bus, LONG_BITS, user=USER) for _ in range(MAX_JOBS_PER_USER)]
    for path in paths:  # randomd hears of each departure a moment after busctl's reply
        await wait_until(lambda path=path: _equals(job_property(root, path, "OwnerConnected"),
                                                   False),
                         f"OwnerConnected of {path} to turn false")
    newcomer = await user_clients(daemon.bus)
    refused = await newcomer.call("Slow", "u", [8])
    assert refused.error == ERROR + "QuotaExceeded" and "MaxJobsPerUser" in refused.text, refused
    busctl_job(daemon.bus, paths[0], "Cancel", user=USER)
    started = await newcomer.call("Slow", "u", [8])
    assert started.error is None, started


# -- bounded under a start-and-disconnect loop -------------------------------------------


LOOP_SECONDS = float(os.environ.get("RANDOMD_LIFETIME_LOOP_SECONDS", "20"))
LOOP_WARM_UP = min(3.0, LOOP_SECONDS / 4)
LOOP_CONFIG = f"SlowBitInterval = 0.01\nMaxJobsPerUser = {MAX_JOBS_PER_USER}\nMaxJobs = 64\n"
# Unfinished jobs plus the finished ones a uid keeps (jobs.RESULTS_PER_JOB_SLOT = 4).
LOOP_TABLE_BOUND = MAX_JOBS_PER_USER + 4 * MAX_JOBS_PER_USER
RSS_GROWTH_BOUND_KB = 16 * 1024


async def job_table(connection) -> dict:
    (objects,) = await call(connection, "GetManagedObjects",
                            interface="org.freedesktop.DBus.ObjectManager")
    return objects


@pytest.mark.slow
async def test_memory_and_the_job_table_stay_bounded_when_a_client_loops_start_and_leave(
        start_randomd, library):
    """Each round: connect, Slow (up to 8 bits: done in 80 ms), disconnect, never Wait.

    Every job then runs on with no one connected: the table holds at most the
    uid's unfinished jobs and its kept results; quota refusals must show up.
    """
    daemon = start_randomd(LOOP_CONFIG).wait_ready()
    pid = daemon.process.pid
    observer = await dbus.connect(daemon.bus.address)
    counts = {"ok": 0, "quota": 0}
    largest = 0
    warm: tuple[int, int] | None = None
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < LOOP_SECONDS:
            connection = await dbus.connect(daemon.bus.address)
            try:
                await call(connection, "Slow", "u", [counts["ok"] % 8 + 1])
                counts["ok"] += 1
            except DBusError as error:
                assert error.type == ERROR + "QuotaExceeded", (error.type, error.text)
                counts["quota"] += 1
            connection.disconnect()
            if (counts["ok"] + counts["quota"]) % 25 == 0:
                largest = max(largest, len(await job_table(observer)))
            if warm is None and elapsed >= LOOP_WARM_UP:
                warm = harness.rss_kb(pid), harness.fd_count(pid)
        assert warm is not None
        # Nobody cancels: the jobs end by themselves, their owners all gone.
        await wait_until(lambda: _equals(get_property(observer, "ActiveJobs"), 0),
                         "the jobs to end by themselves")
        table = await job_table(observer)
        assert all(not props[api.JOB_INTERFACE]["OwnerConnected"].value
                   for props in table.values())
        assert largest <= LOOP_TABLE_BOUND and len(table) <= LOOP_TABLE_BOUND, (largest, table)
        assert await get_property(observer, "JobsStarted") == counts["ok"]
    finally:
        observer.disconnect()
    await wait_until(lambda: harness.fds_at_most(pid, warm[1]), "randomd's fds to come back")
    end_rss = harness.rss_kb(pid)
    print(f"\nstart-and-leave loop ({LOOP_SECONDS:g} s, randomd on {library}): {counts}; "
          f"largest table {largest}; RSS {warm[0]} kB after warm-up, {end_rss} kB at the end")
    assert counts["ok"] > 0 and counts["quota"] > 0, counts
    assert end_rss - warm[0] <= RSS_GROWTH_BOUND_KB
    assert "Traceback" not in daemon.stderr() and "ERROR" not in daemon.stderr()


# -- idle exit and calls in progress ------------------------------------------------


IDLE_EXIT_SEC = 1.0


@pytest.fixture
def idle_bus(users):
    """A bus of its own with a real polkitd, for a randomd that exits when idle."""
    bus = policy_bus()
    polkitd = Polkitd(bus)
    try:
        polkitd.start()
        yield bus
        print(f"polkitd's output:\n{polkitd.output()}")
    finally:
        polkitd.close()
        bus.stop()


async def test_idle_exit_waits_for_a_call_whose_polkit_check_waits_for_a_password(
        idle_bus, library, user_clients):
    """A configure call from randomd-test waits in polkitd for a password; no job exists.

    randomd must not exit under it: once the password is given, the call
    succeeds, and only then does randomd exit (status 0) after IdleExitSec.
    """
    agent_connection = await dbus.connect(idle_bus.address)
    agent = Agent(agent_connection)
    user = await user_clients(idle_bus)
    await agent.register_for(user.pid)
    randomd = harness.Randomd(idle_bus, library, f"IdleExitSec = {IDLE_EXIT_SEC}\n")
    try:
        randomd.wait_ready()
        pending = user.send_set("SlowBitInterval", "d", 2.0, interactive=True)
        request = await agent.next_request()
        assert request.action_id == api.ACTION_CONFIGURE
        # The check waits: randomd must stay for three times IdleExitSec.
        with pytest.raises(subprocess.TimeoutExpired):
            await asyncio.to_thread(randomd.process.wait, 3 * IDLE_EXIT_SEC)
        await agent.authenticate(request)
        reply = await reply_of(pending)
        assert reply.error is None, (reply, randomd.stderr())
        assert await asyncio.to_thread(randomd.process.wait, harness.TIMEOUT) == 0
        assert "idle for" in randomd.stderr()
    finally:
        randomd.stop()
        agent_connection.disconnect()
