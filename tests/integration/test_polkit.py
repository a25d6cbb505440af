"""Authorization against a real polkitd (API.md "Authorization", issue 4).

randomd runs as the randomd user on a policy-enforcing private bus, next to
a real /usr/lib/polkit-1/polkitd reading the project's actions file and the
test's rules.d files (tests/polkit_harness.py).  Clients are root and the
unprivileged randomd-test user.

Everything here uses the real polkitd, python-dbusmock's polkitd template is
not needed: a check that waits for a password is a real one, held by a real
authentication agent (polkit_harness.Agent); a hung authority is the real
polkitd frozen with SIGSTOP; a restart is a real restart.

Each test starts its own polkitd (about 30 ms), so rules and remembered
authorizations never leak from one test into another; randomd itself lives
for the module, except where a test needs a short bound on checks.
"""

from __future__ import annotations

import asyncio
import subprocess

import harness
import pytest
from polkit_harness import (
    ACCESS_DENIED,
    INTERACTIVE_REQUIRED,
    RANDOMD,
    Agent,
    AuthorityMonitor,
    Polkitd,
    UserClient,
    ensure_group_member,
    policy_bus,
    reply_of,
)

from randomd import api, dbus

USER = harness.TEST_USER
# Long jobs (256 bits at 1 s a bit) stay running for as long as a test needs them;
# the debug log names every refusal, for the failure reports.
CONFIG = "SlowBitInterval = 1\nLogLevel = \"debug\"\n"
JOB_BITS = 256
SHORT_BOUND = 1.0  # seconds, for the daemon that must give up on polkit quickly
PROPERTIES = "org.freedesktop.DBus.Properties"


def rule(body: str) -> str:
    """A polkit rules file with one rule whose body is *body*."""
    return f"polkit.addRule(function(action, subject) {{\n{body}\n}});\n"


DENY_CONFIGURE_TO_TEST_USER = rule(f"""
    if (action.id == "{api.ACTION_CONFIGURE}" && subject.user == "{USER}") {{
        return polkit.Result.NO;
    }}""")
GRANT_MANAGE_JOBS_TO_TEST_USER = rule(f"""
    if (action.id == "{api.ACTION_MANAGE_JOBS}" && subject.user == "{USER}") {{
        return polkit.Result.YES;
    }}""")
DENY_MANAGE_JOBS = rule(f"""
    if (action.id == "{api.ACTION_MANAGE_JOBS}") {{
        return polkit.Result.NO;
    }}""")
# The two examples of the README, verbatim.
README_WIDEN = """\
// Members of group randomd-admin may change SlowBitInterval without a password.
polkit.addRule(function(action, subject) {
    if (action.id == "org.randomd.Random1.configure" &&
        subject.isInGroup("randomd-admin")) {
        return polkit.Result.YES;
    }
});
"""
README_NARROW = """\
// Only members of group randomd-users may start slow jobs.
polkit.addRule(function(action, subject) {
    if (action.id == "org.randomd.Random1.slow" &&
        !subject.isInGroup("randomd-users")) {
        return polkit.Result.NO;
    }
});
"""


# -- fixtures --------------------------------------------------------------


@pytest.fixture(scope="module")
def bus(polkit_bus):
    """The policy-enforcing bus of this module, where polkitd may own its name."""
    return polkit_bus


@pytest.fixture(scope="module")
def module_daemon(bus, library):
    """randomd as the randomd user, with the default bounds on polkit checks."""
    randomd = harness.Randomd(bus, library, CONFIG).wait_ready()
    yield randomd
    randomd.stop()


@pytest.fixture
def daemon(module_daemon):
    """The module's randomd; what it logged during the test shows when the test fails."""
    start = len(module_daemon.stderr())
    yield module_daemon
    print(f"randomd's log during the test:\n{module_daemon.stderr()[start:]}")


@pytest.fixture
def start_polkitd(bus):
    """Start a real polkitd with the given rules.d files; it stops after the test."""
    started: list[Polkitd] = []

    def start(rules: dict[str, str] | None = None, on: harness.SystemBus = bus) -> Polkitd:
        polkitd = Polkitd(on, rules)
        started.append(polkitd)
        return polkitd.start()

    yield start
    for polkitd in started:
        print(f"polkitd's output:\n{polkitd.output()}")
        polkitd.close()


@pytest.fixture
def short_bound(users, library):
    """A bus of its own with a randomd that gives up on polkit after SHORT_BOUND seconds."""
    system_bus = policy_bus()
    randomd = harness.Randomd(system_bus, library, CONFIG,
                              env={"RANDOMD_POLKIT_TIMEOUT": str(SHORT_BOUND)})
    try:
        randomd.wait_ready()
        yield system_bus
        print(f"randomd's log:\n{randomd.stderr()}")
    finally:
        randomd.stop()
        system_bus.stop()


class Connections:
    """Root connections and UserClients opened by a test, closed after it."""

    def __init__(self) -> None:
        self._roots: list = []
        self._users: list[UserClient] = []

    async def root(self, on: harness.SystemBus):
        connection = await dbus.connect(on.address)
        self._roots.append(connection)
        return connection

    async def user(self, on: harness.SystemBus, name: str = USER) -> UserClient:
        client = await UserClient.start(on, name)
        self._users.append(client)
        return client

    async def close(self) -> None:
        for client in self._users:
            await client.close()
        for connection in self._roots:
            connection.disconnect()


@pytest.fixture
async def connect():
    """Open root connections and UserClients; all are closed after the test."""
    connections = Connections()
    yield connections
    await connections.close()


@pytest.fixture
async def root(bus, connect):
    """A root client connection on the module's bus."""
    return await connect.root(bus)


@pytest.fixture
async def user(bus, connect) -> UserClient:
    """A randomd-test client connection on the module's bus."""
    return await connect.user(bus)


@pytest.fixture
async def agent(bus, connect) -> Agent:
    """An authentication agent on its own root connection (register it for a process)."""
    return Agent(await connect.root(bus))


# -- helpers ---------------------------------------------------------------


async def call(connection, member: str, signature: str = "", body=(), *,
               path: str = RANDOMD["path"], interface: str = RANDOMD["interface"],
               destination: str = RANDOMD["destination"]) -> list:
    """Call randomd (or *destination*) from a root connection; return the reply body."""
    msg = dbus.Message(destination=destination, path=path, interface=interface,
                         member=member, signature=signature, body=list(body))
    return await dbus.call(connection, msg, harness.TIMEOUT)


async def get(connection, name: str, path: str = RANDOMD["path"],
              interface: str = RANDOMD["interface"]):
    (value,) = await call(connection, "Get", "ss", [interface, name], path=path,
                          interface=PROPERTIES)
    return value.value


async def start_job(connection) -> str:
    """Start a long job owned by *connection*; return its path."""
    (path,) = await call(connection, "Slow", "u", [JOB_BITS])
    return path


async def job_state(connection, path: str) -> str:
    return await get(connection, "State", path, api.JOB_INTERFACE)


def assert_refused(reply, error: str, action: str) -> None:
    """*reply* is the error *error*, with a sentence that names *action*."""
    assert reply.error == error and action in reply.text, reply


async def pending_check(user: UserClient, agent: Agent) -> tuple[asyncio.Future, object]:
    """An interactive configure call from *user* that waits in polkitd for a password."""
    await agent.register_for(user.pid)
    pending = user.send_set("SlowBitInterval", "d", 2.0, interactive=True)
    request = await agent.next_request()
    assert request.action_id == api.ACTION_CONFIGURE
    return pending, request


# -- who may do what -------------------------------------------------------


def test_unprivileged_user_may_start_a_slow_job(daemon, bus, start_polkitd):
    start_polkitd()
    result = harness.busctl(bus, "call", api.BUS_NAME, api.MANAGER_PATH, api.MANAGER_INTERFACE,
                            "Slow", "u", "8", user=USER)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f'o "{api.JOBS_PATH}/')


async def test_configure_without_interaction_is_interactive_authorization_required(
        daemon, start_polkitd, root, user, agent):
    start_polkitd()
    await agent.register_for(user.pid)  # it must not be asked: the call allows no prompt
    before = await get(root, "SlowBitInterval")
    reply = await reply_of(user.send_set("SlowBitInterval", "d", before + 1, interactive=False))
    assert_refused(reply, INTERACTIVE_REQUIRED, api.ACTION_CONFIGURE)
    assert agent.requests.empty()
    assert await get(root, "SlowBitInterval") == before


async def test_interactive_configure_with_no_agent_is_access_denied(daemon, start_polkitd,
                                                                    user):
    start_polkitd()
    reply = await reply_of(user.send_set("SlowBitInterval", "d", 2.0, interactive=True))
    assert_refused(reply, ACCESS_DENIED, api.ACTION_CONFIGURE)


async def test_configure_denied_by_a_rule_is_access_denied(daemon, start_polkitd, user):
    start_polkitd({"50-deny.rules": DENY_CONFIGURE_TO_TEST_USER})
    reply = await reply_of(user.send_set("SlowBitInterval", "d", 2.0, interactive=False))
    assert_refused(reply, ACCESS_DENIED, api.ACTION_CONFIGURE)


async def test_configure_succeeds_after_authenticating_through_an_agent(
        daemon, start_polkitd, root, user, agent):
    start_polkitd()
    value = await get(root, "SlowBitInterval") + 0.5
    await agent.register_for(user.pid)
    pending = user.send_set("SlowBitInterval", "d", value, interactive=True)
    request = await agent.next_request()
    assert request.action_id == api.ACTION_CONFIGURE
    await agent.authenticate(request)
    assert (await reply_of(pending)).error is None
    assert await get(root, "SlowBitInterval") == value


def set_interval_as_member(bus: harness.SystemBus, value: float,
                           login: bool) -> subprocess.CompletedProcess:
    """busctl Set SlowBitInterval as USER: logged in after joining the group (*login*),
    or in a process whose groups were set before (none)."""
    groups = "--init-groups" if login else "--clear-groups"
    argv = ["setpriv", f"--reuid={USER}", f"--regid={USER}", groups, "busctl",
            f"--address={bus.address}", "call", "--allow-interactive-authorization=no",
            api.BUS_NAME, api.MANAGER_PATH, PROPERTIES, "Set", "ssv", api.MANAGER_INTERFACE,
            "SlowBitInterval", "d", str(value)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=harness.TIMEOUT)


def polkitd_version() -> int:
    out = subprocess.run(["pkaction", "--version"], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


async def test_group_rule_lets_members_configure_without_a_password(daemon, bus, start_polkitd,
                                                                     root):
    """The README's example of widening access, typed as an administrator would."""
    ensure_group_member("randomd-admin", USER)
    start_polkitd({"50-randomd-admin.rules": README_WIDEN})
    value = await get(root, "SlowBitInterval") + 0.25
    result = await asyncio.to_thread(set_interval_as_member, bus, value, login=True)
    assert result.returncode == 0, result.stderr
    assert await get(root, "SlowBitInterval") == value


async def test_group_rule_applies_to_processes_of_an_older_login_on_polkitd_122_only(
        daemon, bus, start_polkitd, root):
    """The README: with polkitd 126 a new member is seen in the group from the next login."""
    ensure_group_member("randomd-admin", USER)
    start_polkitd({"50-randomd-admin.rules": README_WIDEN})
    before = await get(root, "SlowBitInterval")
    result = await asyncio.to_thread(set_interval_as_member, bus, before + 0.25, login=False)
    if polkitd_version() >= 126:
        # isInGroup() reads the groups of the calling process.
        assert result.returncode != 0 and api.ACTION_CONFIGURE in result.stderr, result
        assert await get(root, "SlowBitInterval") == before
    else:
        # isInGroup() reads the group database.
        assert result.returncode == 0, result.stderr


async def test_rule_limiting_slow_to_a_group_denies_other_users(daemon, start_polkitd, user):
    """The README's example of narrowing access (randomd-test is not in randomd-users)."""
    start_polkitd({"50-randomd-users.rules": README_NARROW})
    reply = await user.call("Slow", "u", [8])
    assert_refused(reply, ACCESS_DENIED, api.ACTION_SLOW)


async def test_root_is_never_checked_with_polkit(daemon, root):
    """No polkitd runs at all: root configures and cancels all jobs anyway."""
    await call(root, "Set", "ssv", [api.MANAGER_INTERFACE, "SlowBitInterval",
                                    dbus.Variant("d", 1.0)], interface=PROPERTIES)
    await call(root, "CancelAll")


async def test_quick_and_bytes_never_ask_polkit(daemon, start_polkitd, user):
    """polkitd is frozen: a call that asked it would end in AccessDenied."""
    start_polkitd().pause()
    quick, data = await asyncio.gather(user.call("Quick", "u", [64]),
                                       user.call("Bytes", "u", [16]))
    assert quick.error is None and int(quick.body[0]) < 2**64
    assert data.error is None and len(data.body[0]) == 16


# -- other users' jobs -----------------------------------------------------


async def test_wait_on_another_uids_job_needs_manage_jobs(daemon, start_polkitd, root, user):
    start_polkitd()
    job = await start_job(root)
    reply = await user.call("Wait", path=job, interface=api.JOB_INTERFACE)
    assert_refused(reply, INTERACTIVE_REQUIRED, api.ACTION_MANAGE_JOBS)


async def test_cancel_of_another_uids_job_needs_manage_jobs(daemon, start_polkitd, root, user):
    start_polkitd()
    job = await start_job(root)
    reply = await user.call("Cancel", path=job, interface=api.JOB_INTERFACE)
    assert_refused(reply, INTERACTIVE_REQUIRED, api.ACTION_MANAGE_JOBS)
    assert await job_state(root, job) == "running"


async def test_manage_jobs_rule_lets_a_user_cancel_another_uids_job(daemon, start_polkitd,
                                                                    root, user):
    start_polkitd({"50-manage.rules": GRANT_MANAGE_JOBS_TO_TEST_USER})
    job = await start_job(root)
    reply = await user.call("Cancel", path=job, interface=api.JOB_INTERFACE)
    assert reply.error is None, reply
    assert await job_state(root, job) == "cancelled"


async def test_cancel_all_needs_manage_jobs(daemon, start_polkitd, root, user):
    start_polkitd()
    job = await start_job(root)
    reply = await user.call("CancelAll")
    assert_refused(reply, INTERACTIVE_REQUIRED, api.ACTION_MANAGE_JOBS)
    assert await job_state(root, job) == "running"


async def test_reload_needs_configure(daemon, start_polkitd, user):
    start_polkitd()
    reply = await user.call("Reload")
    assert_refused(reply, INTERACTIVE_REQUIRED, api.ACTION_CONFIGURE)


async def test_owner_uid_cancels_its_job_from_another_connection_without_manage_jobs(
        daemon, bus, start_polkitd, root, connect):
    """A rule denies manage-jobs to everyone: the owner's uid is not asked about it."""
    start_polkitd({"50-deny.rules": DENY_MANAGE_JOBS})
    owner, other = await connect.user(bus), await connect.user(bus)
    started = await owner.call("Slow", "u", [JOB_BITS])
    assert started.error is None, started
    (job,) = started.body
    reply = await other.call("Cancel", path=job, interface=api.JOB_INTERFACE)
    assert reply.error is None, reply
    assert await job_state(root, job) == "cancelled"


# -- a check that takes long, and a polkitd that fails ---------------------


async def test_quick_flood_is_served_while_another_callers_check_waits(
        daemon, start_polkitd, root, user, agent):
    start_polkitd()
    pending, request = await pending_check(user, agent)
    flood = 2000
    in_flight = asyncio.Semaphore(64)  # half the bus's limit of calls awaiting a reply

    async def quick() -> str:
        async with in_flight:
            (number,) = await call(root, "Quick", "u", [32])
            return number

    numbers = await asyncio.gather(*(quick() for _ in range(flood)))
    assert len(numbers) == flood
    assert not pending.done(), "the check should still wait for the password"
    agent.dismiss(request)
    assert_refused(await reply_of(pending), ACCESS_DENIED, api.ACTION_CONFIGURE)


async def test_check_is_withdrawn_when_its_caller_leaves(daemon, bus, start_polkitd, root,
                                                        user, agent, connect):
    """A bus monitor sees randomd send CancelCheckAuthorization for the check.

    (polkitd also closes the dialog by itself when the subject's name leaves,
    so the agent cannot tell whether randomd withdrew the check.)
    """
    start_polkitd()
    monitor = await AuthorityMonitor.start(await connect.root(bus))
    (randomd,) = await call(root, "GetNameOwner", "s", [api.BUS_NAME],
                            path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                            destination="org.freedesktop.DBus")
    await pending_check(user, agent)
    check = await monitor.wait_for(randomd, "CheckAuthorization",
                                   lambda body: body[0][1]["name"].value == user.unique_name)
    cancellation_id = check.body[4]
    await user.kill()
    await monitor.wait_for(randomd, "CancelCheckAuthorization",
                           lambda body: body == [cancellation_id])


async def test_slow_is_access_denied_when_polkit_is_not_running(daemon, user):
    reply = await user.call("Slow", "u", [8])
    assert_refused(reply, ACCESS_DENIED, api.ACTION_SLOW)
    assert "polkit is not running" in reply.text


async def test_polkit_restart_during_a_check_is_access_denied(daemon, start_polkitd, user,
                                                              agent):
    polkitd = start_polkitd()
    pending, _request = await pending_check(user, agent)
    await asyncio.to_thread(polkitd.stop)
    reply = await reply_of(pending)
    assert_refused(reply, ACCESS_DENIED, api.ACTION_CONFIGURE)
    assert "polkit stopped before answering" in reply.text


async def test_checks_succeed_after_polkit_restarts(daemon, start_polkitd, user):
    polkitd = start_polkitd()
    assert (await user.call("Slow", "u", [8])).error is None
    await asyncio.to_thread(polkitd.restart)
    reply = await user.call("Slow", "u", [8])
    assert reply.error is None, reply


async def test_hung_polkit_is_access_denied_after_the_bound(short_bound, start_polkitd,
                                                            connect):
    start_polkitd(on=short_bound).pause()
    user = await connect.user(short_bound)
    reply = await user.call("Slow", "u", [8])
    assert_refused(reply, ACCESS_DENIED, api.ACTION_SLOW)
    assert f"did not answer within {SHORT_BOUND:g} s" in reply.text


async def test_checks_succeed_once_a_hung_polkit_recovers(short_bound, start_polkitd, connect):
    polkitd = start_polkitd(on=short_bound)
    user = await connect.user(short_bound)
    polkitd.pause()
    assert (await user.call("Slow", "u", [8])).error == ACCESS_DENIED
    polkitd.resume()
    reply = await user.call("Slow", "u", [8])
    assert reply.error is None, reply


async def test_timed_out_check_is_withdrawn_from_polkit(short_bound, start_polkitd, connect):
    """An interactive check past its bound: randomd gives up and polkitd closes the dialog."""
    start_polkitd(on=short_bound)
    user = await connect.user(short_bound)
    agent = Agent(await connect.root(short_bound))
    pending, request = await pending_check(user, agent)
    assert_refused(await reply_of(pending), ACCESS_DENIED, api.ACTION_CONFIGURE)
    await agent.wait_cancelled(request.cookie)
