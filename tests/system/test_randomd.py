"""randomd end to end, as a user meets it: the installed package on a booted systemd.

Everything goes through the `testbed` fixture (conftest.py): a Debian
container booted with systemd and the freshly built .deb installed
(`packaging/testbed run-tests`), or this machine itself with
RANDOMD_TESTBED=local (the autopkgtest, debian/tests/system).

The tests share one machine and run in file order. Each one puts back what
it changes (configuration, drop-ins, a stopped service); the purge tests come
last and reinstall the package. No sleeps: every asynchronous effect is
awaited with testbed.wait_for and a deadline.
"""

import json
import re
import secrets
import time

import pytest

pytestmark = pytest.mark.system

UNIT = "randomd.service"
NAME = "org.randomd.Random1"
PATH = "/org/randomd/Random1"
IFACE = "org.randomd.Random1"
CONF = "/etc/randomd/randomd.conf"
DROPIN_DIR = "/run/systemd/system/randomd.service.d"
WORK = "/run/randomd-test"  # scripts and outputs of the tests, inside

# Every file the package puts into the system (beyond its Python modules and
# docs): after a purge none may be left.
PACKAGE_PATHS = [
    "/usr/lib/systemd/system/randomd.service",
    "/lib/systemd/system/randomd.service",  # where 0.1.0 had it
    "/usr/share/dbus-1/system.d/org.randomd.Random1.conf",
    "/usr/share/dbus-1/system-services/org.randomd.Random1.service",
    "/usr/share/dbus-1/interfaces/org.randomd.Random1.xml",
    "/usr/share/dbus-1/interfaces/org.randomd.Random1.Job.xml",
    "/usr/share/polkit-1/actions/org.randomd.Random1.policy",
    "/usr/lib/sysusers.d/randomd.conf",
    "/usr/libexec/randomd",
    "/usr/bin/randomctl",
    "/usr/share/bash-completion/completions/randomctl",
    "/etc/randomd",
]

# Every number the tests got from randomd that is long enough not to turn up
# in the journal by chance (a 128-bit number has ~39 digits; a 5-digit one
# could be any pid or timestamp). test_journal_holds_no_generated_number
# looks for each of them.
NUMBERS = []
MIN_DIGITS = 16


def collect(number):
    """Remember number (a decimal string) for the journal check; return it as an int."""
    assert re.fullmatch(r"[0-9]+", number), number
    if len(number) >= MIN_DIGITS:
        NUMBERS.append(number)
    return int(number)


def busctl(testbed, *args, user=None, check=True):
    return testbed.run(["busctl", *args], user=user, check=check)


def call(testbed, method, signature="", *args, user=None, check=True):
    argv = ["call", NAME, PATH, IFACE, method]
    if signature:
        argv += [signature, *map(str, args)]
    return busctl(testbed, *argv, user=user, check=check)


def get_property(testbed, prop, user=None):
    """A manager property as busctl prints it, e.g. 'u 4096'."""
    return busctl(testbed, "get-property", NAME, PATH, IFACE, prop, user=user).stdout.strip()


def show(testbed, unit, *props):
    """`systemctl show` properties of unit as a dict."""
    out = testbed.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def busctl_string(stdout):
    """The value of a busctl 's "..."' reply."""
    m = re.fullmatch(r's "(.*)"', stdout.strip())
    assert m, f"not a busctl string reply: {stdout!r}"
    return m.group(1)


def now_usec(testbed):
    """The machine's clock in microseconds, as in the journal's __REALTIME_TIMESTAMP."""
    return int(testbed.run(["date", "+%s%6N"]).stdout)


def journal_since(testbed, unit, usec):
    """The journal entries of unit logged at or after usec (from now_usec)."""
    return [e for e in testbed.journal(unit) if int(e["__REALTIME_TIMESTAMP"]) >= usec]


def start_randomd(testbed):
    """randomd active (started if needed), with a clean start-rate counter; returns MainPID.

    reset-failed also resets the start limit (5 starts in 10 s), which a
    fast suite of starts, stops and restarts would otherwise hit.
    """
    testbed.systemctl("reset-failed", UNIT, check=False)
    testbed.systemctl("start", UNIT)
    return int(show(testbed, UNIT, "MainPID")["MainPID"])


def wait_for_restart(testbed, old_pid, what, timeout=20):
    """Wait until randomd is active again with a main pid other than old_pid."""

    def restarted():
        props = show(testbed, UNIT, "ActiveState", "SubState", "MainPID")
        pid = int(props["MainPID"])
        ok = props["ActiveState"] == "active" and props["SubState"] == "running"
        return pid if ok and pid not in (0, old_pid) else None

    return testbed.wait_for(restarted, timeout=timeout, what=what)


@pytest.fixture(params=["root", "user"])
def who(request, testbed):
    """Run as root, then as the unprivileged test user (None means root for testbed.run)."""
    return None if request.param == "root" else testbed.user


@pytest.fixture(scope="module")
def workdir(testbed):
    """WORK inside, world-readable, for the tests' scripts and outputs; removed at the end."""
    testbed.run(["install", "-d", "-m", "0755", WORK])
    yield WORK
    testbed.run(["rm", "-rf", WORK])


@pytest.fixture(scope="module")
def shipped_config(testbed):
    """The package's randomd.conf, as installed."""
    return testbed.read_file(CONF)


@pytest.fixture
def configure(testbed, shipped_config):
    """configure(**keys): the shipped randomd.conf plus these keys, then a reload.

    Afterwards the shipped file comes back and, if randomd runs, is reloaded.
    """

    def apply(**keys):
        lines = [f"{key} = {json.dumps(value)}" for key, value in keys.items()]
        testbed.write_file(CONF, shipped_config + "\n" + "\n".join(lines) + "\n")
        start_randomd(testbed)
        testbed.systemctl("reload", UNIT)

    yield apply
    testbed.write_file(CONF, shipped_config)
    if testbed.systemctl("is-active", UNIT, check=False).stdout.strip() == "active":
        testbed.systemctl("reload", UNIT)


# ------------------------------------------------------------------- start


def test_start_reaches_active_running_with_a_status_text(testbed):
    testbed.systemctl("stop", UNIT)
    start_randomd(testbed)
    props = show(testbed, UNIT, "ActiveState", "SubState", "StatusText", "Type", "MainPID")
    assert (props["ActiveState"], props["SubState"]) == ("active", "running"), props
    assert props["Type"] == "notify"
    # STATUS= from the daemon, not systemd's own words.
    assert props["StatusText"].strip(), props
    status = testbed.systemctl("status", "--no-pager", "--full", UNIT).stdout
    assert "active (running)" in status
    assert f'Status: "{props["StatusText"]}"' in status
    # It runs as its own system user, not root.
    user = testbed.run(["ps", "-o", "user=", "-p", props["MainPID"]]).stdout.strip()
    assert user == "randomd"


# ----------------------------------------------------------------- clients


def test_busctl_quick(testbed, who):
    start_randomd(testbed)
    out = call(testbed, "Quick", "u", 16, user=who).stdout
    assert 0 <= int(busctl_string(out)) < 2**16
    big = collect(busctl_string(call(testbed, "Quick", "u", 128, user=who).stdout))
    assert 0 <= big < 2**128


def test_randomctl_quick(testbed, who):
    start_randomd(testbed)
    out = testbed.run(["randomctl", "quick"], user=who).stdout
    assert 0 <= collect(out.strip()) < 2**16
    out = testbed.run(["randomctl", "quick", "128"], user=who).stdout
    assert 0 <= collect(out.strip()) < 2**128


def test_randomctl_slow_with_a_configured_interval(testbed, who, configure):
    configure(SlowBitInterval=0.01)
    assert get_property(testbed, "SlowBitInterval") == "d 0.01"
    started = time.monotonic()
    out = testbed.run(["randomctl", "slow", "8"], user=who, timeout=30).stdout
    assert 0 <= collect(out.strip()) < 2**8
    # 8 bits at 0.01 s, not at the shipped default.
    assert time.monotonic() - started < 10
    out = testbed.run(["randomctl", "slow", "64"], user=who, timeout=30).stdout
    assert 0 <= collect(out.strip()) < 2**64


def test_busctl_slow_then_busctl_wait_as_two_commands(testbed, who):
    """The README's example as printed, at the shipped pace (8 bits: 2 s).

    The job outlives the busctl that started it; the next busctl, of the
    same user, collects its number.
    """
    start_randomd(testbed)
    started = call(testbed, "Slow", "u", 8, user=who).stdout
    m = re.fullmatch(r'o "(/org/randomd/Random1/jobs/[0-9]+)"', started.strip())
    assert m, f"not a job path: {started!r}"
    out = busctl(testbed, "call", "--timeout=60", NAME, m.group(1), "org.randomd.Random1.Job",
                 "Wait", user=who).stdout
    assert 0 <= int(busctl_string(out)) < 2**8


CLIENT_SCRIPT = """\
from randomd.client import Client
with Client() as client:
    job = client.slow(8)
    print(client.quick(128), job.value, client.version)
"""


def test_python_client_from_python3_randomd(testbed, who):
    start_randomd(testbed)
    out = testbed.run(["/usr/bin/python3", "-c", CLIENT_SCRIPT], user=who, timeout=60).stdout
    quick, slow, version = out.split()
    assert 0 <= collect(quick) < 2**128 and 0 <= collect(slow) < 2**8
    assert version == testbed.run(["dpkg-query", "-W", "-f=${Version}", "python3-randomd"]).stdout


def test_unprivileged_user_is_refused_set_interval(testbed):
    start_randomd(testbed)
    before = get_property(testbed, "SlowBitInterval")
    # No logind session: polkit judges by allow_any, auth_admin_keep => no.
    r = testbed.run(["randomctl", "set-interval", "1"], user=testbed.user, check=False)
    assert r.returncode == 4, r
    assert r.stdout == ""
    message = r.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith("randomctl: ") and "org.randomd.Random1.configure" in message, message
    assert get_property(testbed, "SlowBitInterval") == before


def test_root_may_set_interval(testbed):
    start_randomd(testbed)
    try:
        testbed.run(["randomctl", "set-interval", "0.5"])
        assert get_property(testbed, "SlowBitInterval") == "d 0.5"
    finally:
        testbed.systemctl("reload", UNIT)  # back to the configured value


# -------------------------------------------------------------- activation


def test_bus_activation_starts_the_stopped_service(testbed):
    testbed.systemctl("stop", UNIT)
    testbed.systemctl("reset-failed", UNIT, check=False)
    assert testbed.systemctl("is-active", UNIT, check=False).stdout.strip() == "inactive"
    # dbus-daemon asks systemd for the unit named in the activation file.
    out = call(testbed, "Quick", "u", 128, user=testbed.user).stdout
    collect(busctl_string(out))
    props = show(testbed, UNIT, "ActiveState", "SubState", "MainPID")
    assert (props["ActiveState"], props["SubState"]) == ("active", "running")
    assert int(props["MainPID"]) > 0


# ------------------------------------------------------------------ reload


def test_reload_applies_a_changed_config(testbed, configure):
    pid = start_randomd(testbed)
    assert get_property(testbed, "MaxQuickBits") == "u 4096"
    configure(MaxQuickBits=100)
    assert get_property(testbed, "MaxQuickBits") == "u 100"
    # busctl shows only the error's message; randomctl --json its name.
    r = testbed.run(["randomctl", "--json", "quick", "101"], check=False)
    assert r.returncode == 2, r  # a value outside randomd's limits: usage, randomctl(1)
    assert json.loads(r.stdout)["error"]["dbus_error"] == f"{IFACE}.Error.InvalidArgument", r
    call(testbed, "Quick", "u", 100)
    # The same process: a reload, not a restart.
    assert int(show(testbed, UNIT, "MainPID")["MainPID"]) == pid


def test_reload_keeps_the_old_config_when_the_new_one_is_broken(testbed, configure):
    configure(MaxQuickBits=100)
    pid = int(show(testbed, UNIT, "MainPID")["MainPID"])
    since = now_usec(testbed)
    testbed.write_file(CONF, "MaxQuickBits = 0\n")
    # systemctl says the reload failed (ExecReload= calls Reload(), which fails) ...
    result = testbed.systemctl("reload", UNIT, check=False)
    assert result.returncode != 0, result
    # ... with a log line naming the key.
    testbed.wait_for(
        lambda: [
            e
            for e in journal_since(testbed, UNIT, since)
            if e.get("SYSLOG_IDENTIFIER") == "randomd"
            and int(e["PRIORITY"]) <= 3
            and "MaxQuickBits" in e.get("MESSAGE", "")
        ],
        timeout=10,
        what="an error log line naming MaxQuickBits",
    )
    props = show(testbed, UNIT, "ActiveState", "SubState", "MainPID")
    assert (props["ActiveState"], props["SubState"], int(props["MainPID"])) == (
        "active",
        "running",
        pid,
    )
    assert get_property(testbed, "MaxQuickBits") == "u 100"


# -------------------------------------------------------------------- stop

# Starts `count` Slow jobs of `bits` bits and prints one JSON line per event,
# in the order they arrive: {"started": path}, {"finished": path, "args":
# [state, number, error]}, {"name_lost": true} when org.randomd.Random1 loses
# its owner. Exits once it has seen every job's Finished and the name lost.
# Finished is unicast to the owner, so no match rule is needed for it.
FINISHED_CLIENT = """\
import asyncio, json, sys
from dbus_next import BusType, Message, MessageType
from dbus_next.aio import MessageBus

def emit(**event):
    print(json.dumps(event), flush=True)

async def main(count, bits):
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    paths, finished, name_lost, done = [], set(), [], asyncio.Event()

    def handler(msg):
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.interface == "org.randomd.Random1.Job" and msg.member == "Finished":
            emit(finished=msg.path, args=msg.body, destination=msg.destination)
            finished.add(msg.path)
        elif msg.member == "NameOwnerChanged" and msg.body[0] == "org.randomd.Random1":
            if not msg.body[2]:
                emit(name_lost=True)
                name_lost.append(True)
        if len(finished) == count and name_lost:
            done.set()

    bus.add_message_handler(handler)
    await bus.call(Message(
        destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus", member="AddMatch", signature="s",
        body=["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
              "arg0='org.randomd.Random1'"]))
    for _ in range(count):
        reply = await bus.call(Message(
            destination="org.randomd.Random1", path="/org/randomd/Random1",
            interface="org.randomd.Random1", member="Slow", signature="u", body=[bits]))
        if reply.message_type == MessageType.ERROR:
            emit(error=reply.error_name, body=reply.body)
            return 1
        paths.append(reply.body[0])
        emit(started=reply.body[0], unique_name=bus.unique_name)
    try:
        await asyncio.wait_for(done.wait(), 120)
    except asyncio.TimeoutError:
        emit(timeout=True)
        return 1
    return 0

sys.exit(asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]))))
"""


def run_as_unit(testbed, unit, argv, output, user):
    """Start argv as a transient service `unit` run by `user`, stdout+stderr to file `output`.

    A unit, not a process of testbed.run: systemd inside owns it, and it keeps
    running across the commands of the test.
    """
    testbed.run(
        [
            "systemd-run",
            "--quiet",
            "--collect",
            f"--unit={unit}",
            f"--uid={user}",
            f"--property=StandardOutput=truncate:{output}",
            "--property=StandardError=inherit",
            *argv,
        ]
    )


def json_lines(testbed, path):
    return [json.loads(line) for line in testbed.read_file(path).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stopped_with_jobs(testbed, workdir):
    """Stop randomd while the unprivileged user has three slow jobs running; what happened.

    Two jobs are a dbus-next client's that prints every Finished signal, one
    is `randomctl slow 64`'s. The unit is pinned by a unit ordered after it,
    so that systemd keeps its ExecMain* properties after the stop instead of
    unloading the inactive unit.
    """
    tag = secrets.token_hex(3)
    pin = f"randomd-test-pin-{tag}.service"
    client_unit, ctl_unit = f"randomd-test-client-{tag}", f"randomd-test-ctl-{tag}"
    script, client_out, ctl_out = (
        f"{workdir}/finished_client.py",
        f"{workdir}/client-{tag}.out",
        f"{workdir}/ctl-{tag}.out",
    )
    testbed.write_file(script, FINISHED_CLIENT)
    testbed.run(
        ["systemd-run", "--quiet", f"--unit={pin}", f"--property=After={UNIT}", "sleep", "infinity"]
    )
    try:
        start_randomd(testbed)
        # Jobs that outlast the test: 64 bits at 1 s each (root may set it).
        busctl(testbed, "set-property", NAME, PATH, IFACE, "SlowBitInterval", "d", "1")
        run_as_unit(
            testbed, client_unit, ["/usr/bin/python3", script, "2", "64"], client_out, testbed.user
        )
        ctl = "randomctl slow 64; echo exit=$?"
        run_as_unit(testbed, ctl_unit, ["/bin/sh", "-c", ctl], ctl_out, testbed.user)
        testbed.wait_for(
            lambda: get_property(testbed, "ActiveJobs") == "u 3", timeout=15, what="3 running jobs"
        )
        started = time.monotonic()
        testbed.systemctl("stop", UNIT)
        stop_seconds = time.monotonic() - started
        testbed.wait_for(
            f"! systemctl is-active --quiet {client_unit}.service",
            timeout=10,
            what="the client to see 2 Finished signals and the name lost, and exit",
        )
        testbed.wait_for(
            lambda: "exit=" in testbed.read_file(ctl_out), timeout=10, what="randomctl to exit"
        )
        yield {
            "stop_seconds": stop_seconds,
            "unit": show(
                testbed,
                UNIT,
                "ActiveState",
                "Result",
                "ExecMainCode",
                "ExecMainStatus",
                "TimeoutStopUSec",
                "InvocationID",
            ),
            "client": json_lines(testbed, client_out),
            "randomctl": testbed.read_file(ctl_out),
        }
    finally:
        for unit in (f"{client_unit}.service", f"{ctl_unit}.service", pin):
            testbed.systemctl("stop", unit, check=False)
        start_randomd(testbed)  # with the configured SlowBitInterval again


def test_stop_is_clean_and_quick(testbed, stopped_with_jobs):
    unit = stopped_with_jobs["unit"]
    assert unit["ActiveState"] == "inactive", unit
    assert unit["Result"] == "success", unit
    # Exited by itself (CLD_EXITED = 1) with status 0: not killed after a timeout.
    assert (unit["ExecMainCode"], unit["ExecMainStatus"]) == ("1", "0"), unit
    timeout_stop = unit["TimeoutStopUSec"]
    assert timeout_stop == "15s", unit
    assert stopped_with_jobs["stop_seconds"] < 5, stopped_with_jobs
    # systemd's own messages about that run: no timeout, no SIGKILL.
    invocation = unit["InvocationID"]
    assert invocation, unit
    messages = [
        e.get("MESSAGE", "")
        for e in testbed.journal(UNIT)
        if invocation in (e.get("INVOCATION_ID"), e.get("_SYSTEMD_INVOCATION_ID"))
    ]
    assert any("Deactivated successfully" in m for m in messages), messages
    assert not [m for m in messages if "timed out" in m or "Killing" in m], messages


def test_stop_ends_every_job_with_shutting_down(testbed, stopped_with_jobs):
    events = stopped_with_jobs["client"]
    started = [e for e in events if "started" in e]
    finished = [e for e in events if "finished" in e]
    assert len(started) == 2, events
    assert sorted(e["finished"] for e in finished) == sorted(e["started"] for e in started)
    for e in finished:
        assert e["args"] == ["failed", "", "org.randomd.Random1.Error.ShuttingDown"], events
        # Unicast to the owner only.
        assert e["destination"] == started[0]["unique_name"], events
    # Every Finished was sent before randomd released its name.
    lost = [i for i, e in enumerate(events) if e.get("name_lost")]
    assert lost, events
    assert all(events.index(e) < lost[0] for e in finished), events
    # randomctl slow, told the same, fails with a sentence.
    out = stopped_with_jobs["randomctl"]
    assert out.rstrip().endswith("exit=1"), out
    assert "shutting down" in out.lower() and "Traceback" not in out, out


# ---------------------------------------------------------------- restarts


def test_kill_9_is_followed_by_a_restart(testbed):
    pid = start_randomd(testbed)
    restarts = int(show(testbed, UNIT, "NRestarts")["NRestarts"])
    testbed.run(["kill", "-9", str(pid)])
    wait_for_restart(testbed, pid, "systemd to restart randomd after SIGKILL")
    # Restarted by Restart=on-failure, not started afresh by a bus call.
    assert int(show(testbed, UNIT, "NRestarts")["NRestarts"]) == restarts + 1
    call(testbed, "Quick", "u", 16, user=testbed.user)


@pytest.fixture
def short_watchdog(testbed):
    """randomd restarted with WatchdogSec=2s from a runtime drop-in; removed afterwards."""
    dropin = f"{DROPIN_DIR}/50-randomd-test-watchdog.conf"
    testbed.write_file(dropin, "[Service]\nWatchdogSec=2s\n")
    try:
        testbed.systemctl("daemon-reload")
        testbed.systemctl("reset-failed", UNIT, check=False)
        testbed.systemctl("restart", UNIT)
        yield
    finally:
        testbed.run(["rm", "-f", dropin])
        testbed.run(["rmdir", "--ignore-fail-on-non-empty", DROPIN_DIR], check=False)
        testbed.systemctl("daemon-reload")
        testbed.systemctl("reset-failed", UNIT, check=False)
        testbed.systemctl("restart", UNIT)


def test_watchdog_restarts_a_daemon_that_stops_pinging(testbed, short_watchdog):
    props = show(testbed, UNIT, "MainPID", "WatchdogUSec", "NRestarts")
    assert props["WatchdogUSec"] == "2s", props
    pid = int(props["MainPID"])
    since = now_usec(testbed)
    testbed.run(["kill", "-STOP", str(pid)])
    wait_for_restart(testbed, pid, "the watchdog to restart randomd", timeout=20)
    assert int(show(testbed, UNIT, "NRestarts")["NRestarts"]) == int(props["NRestarts"]) + 1
    # It was the watchdog (SIGABRT), not some other death.
    messages = [e.get("MESSAGE", "") for e in journal_since(testbed, UNIT, since)]
    assert any("Watchdog timeout" in m for m in messages), messages
    assert any("result 'watchdog'" in m for m in messages), messages
    call(testbed, "Quick", "u", 16, user=testbed.user)


# ----------------------------------------------------------------- journal


def test_journal_holds_structured_fields(testbed, configure):
    configure(LogLevel="debug", SlowBitInterval=0.01)  # jobs are logged at debug
    since = now_usec(testbed)
    out = testbed.run(["randomctl", "slow", "64"], user=testbed.user, timeout=30).stdout
    collect(out.strip())
    uid = testbed.run(["id", "-u", testbed.user]).stdout.strip()

    def job_entries():
        entries = journal_since(testbed, UNIT, since)
        return [e for e in entries if e.get("RANDOMD_UID") == uid and "RANDOMD_JOB" in e]

    entries = testbed.wait_for(job_entries, timeout=10, what="randomd's log entries of the job")
    for e in entries:
        assert re.fullmatch(r"[0-9]+", e["RANDOMD_JOB"]), e
        assert re.fullmatch(r":[0-9]+\.[0-9]+", e["RANDOMD_SENDER"]), e
        assert e["SYSLOG_IDENTIFIER"] == "randomd", e
        assert e["_SYSTEMD_UNIT"] == UNIT, e
        assert e["PRIORITY"] in "01234567", e


def test_journal_holds_no_generated_number(testbed, configure):
    # Even at the most talkative level, after numbers of every kind.
    configure(LogLevel="debug", SlowBitInterval=0.01)
    for who in (None, testbed.user):
        collect(busctl_string(call(testbed, "Quick", "u", 128, user=who).stdout))
        collect(testbed.run(["randomctl", "quick", "128"], user=who).stdout.strip())
        collect(testbed.run(["randomctl", "slow", "64"], user=who, timeout=30).stdout.strip())
    assert len(NUMBERS) >= 6, NUMBERS
    # Everything logged before this point is in the journal files when it returns.
    testbed.run(["journalctl", "--sync"])
    export = testbed.run(["journalctl", "--no-pager", "-o", "export"], timeout=120).stdout
    assert "\nRANDOMD_JOB=" in export  # the daemon's entries are there to search
    leaked = [n for n in NUMBERS if n in export]
    assert not leaked, f"numbers found in the journal: {leaked}"


# ---------------------------------------------------------- systemd-analyze


def test_systemd_analyze_verify_is_clean(testbed):
    r = testbed.run(
        ["systemd-analyze", "verify", "--man=no", "/usr/lib/systemd/system/randomd.service"],
        check=False,
    )
    assert r.returncode == 0, r
    assert r.stdout + r.stderr == "", r


def test_systemd_analyze_security_rates_it_below_2(testbed):
    out = testbed.run(["systemd-analyze", "security", "--no-pager", UNIT]).stdout
    m = re.search(r"Overall exposure level for randomd\.service: ([0-9.]+) (\S+)", out)
    assert m, out
    assert float(m.group(1)) < 2.0, out[-2000:]


# ------------------------------------------------------- purge (keep last)


@pytest.fixture(scope="module")
def purged(testbed):
    """`apt-get purge -y randomd` with randomd running; reinstalled at the end in any case."""
    start_randomd(testbed)
    pid = int(show(testbed, UNIT, "MainPID")["MainPID"])
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        r = testbed.run(["apt-get", "purge", "-y", "randomd"], env=env, timeout=300)
        yield {"pid": pid, "output": r.stdout + r.stderr}
    finally:
        status = testbed.run(["dpkg-query", "-W", "-f=${db:Status-Status}", "randomd"], check=False)
        if status.stdout.strip() != "installed":
            install = ["apt-get", "install", "-y", "--no-install-recommends", *testbed.packages]
            testbed.run(install, env=env, timeout=300)


def test_purge_stops_the_service(testbed, purged):
    r = testbed.run(["kill", "-0", str(purged["pid"])], check=False)
    assert r.returncode != 0, f"randomd (pid {purged['pid']}) still runs after the purge"
    assert testbed.run(["pgrep", "-u", "randomd"], check=False).stdout == ""
    assert testbed.systemctl("is-active", UNIT, check=False).stdout.strip() == "inactive"
    load = show(testbed, UNIT, "LoadState")["LoadState"]
    assert load == "not-found", load


def test_purge_leaves_nothing_behind(testbed, purged):
    script = 'for p in "$@"; do [ ! -e "$p" ] || echo "$p"; done'
    left = testbed.run(["sh", "-c", script, "sh", *PACKAGE_PATHS]).stdout.split()
    assert left == [], f"left behind after purge: {left}"
    # dpkg forgot its conffiles too, and the bus its name.
    # (dpkg may still know the name, as python3-randomd's Breaks names it.)
    status = testbed.run(["dpkg-query", "-W", "-f=${db:Status-Status}", "randomd"], check=False)
    assert status.returncode != 0 or status.stdout == "not-installed", status
    r = call(testbed, "Quick", "u", 16, check=False)
    not_activatable = {
        "dbus-daemon": "not provided by any .service files",
        "dbus-broker": "not activatable",
    }[testbed.bus]
    assert r.returncode != 0 and not_activatable in r.stderr, r


UNAVAILABLE_SCRIPT = """\
import randomd.client
try:
    randomd.client.Client().quick(8)
except randomd.client.Unavailable as e:
    print("Unavailable:", e)
"""


def test_python3_randomd_stays_and_reports_the_daemon_unavailable(testbed, purged):
    status = testbed.run(["dpkg-query", "-W", "-f=${db:Status-Status}", "python3-randomd"])
    assert status.stdout == "installed"
    out = testbed.run(["/usr/bin/python3", "-c", UNAVAILABLE_SCRIPT], user=testbed.user).stdout
    assert out.startswith("Unavailable: "), out


def test_reinstall_after_purge_works(testbed, purged):
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *testbed.packages]
    testbed.run(install, env=env, timeout=300)
    assert testbed.systemctl("is-active", UNIT, check=False).stdout.strip() == "inactive"
    out = call(testbed, "Quick", "u", 128, user=testbed.user).stdout
    collect(busctl_string(out))
    assert testbed.systemctl("is-active", UNIT).stdout.strip() == "active"
    testbed.run(["test", "-f", CONF])  # the conffile is back
