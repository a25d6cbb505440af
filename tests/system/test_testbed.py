"""The test bed itself works: a booted systemd, its system bus, polkitd, a test user.

These need no randomd package: `RANDOMD_DEB_DIR=none packaging/testbed run-tests`
(or `--deb none`) runs them on the bare image.
"""

import secrets
import subprocess

import pytest

pytestmark = pytest.mark.system

POLKIT = [
    "org.freedesktop.PolicyKit1",
    "/org/freedesktop/PolicyKit1/Authority",
    "org.freedesktop.DBus.Properties",
    "Get",
    "ss",
    "org.freedesktop.PolicyKit1.Authority",
    "BackendName",
]


# Prints the uid the system bus reports for the caller's own connection.
OWN_UID = """
import asyncio
from dbus_next import BusType, Message
from dbus_next.aio import MessageBus

async def main():
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    reply = await bus.call(Message(
        destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus", member="GetConnectionUnixUser",
        signature="s", body=[bus.unique_name]))
    print(reply.body[0])

asyncio.run(main())
"""


def test_boots_to_running(testbed):
    state = testbed.systemctl("is-system-running", check=False).stdout.strip()
    failed = testbed.systemctl("--failed", "--no-legend", check=False).stdout
    assert state == "running", f"system is {state}; failed units:\n{failed}"
    # Its PID 1 is the container's own systemd, in its own pid namespace.
    assert testbed.read_file("/proc/1/comm") == "systemd\n"
    # Named after the machine, and its files are reachable from the host.
    assert testbed.run(["hostname"]).stdout == f"{testbed.name}\n"
    assert (testbed.root / "etc/hostname").read_text() == f"{testbed.name}\n"


def test_runs_the_release_asked_for(testbed):
    release = testbed.os_release()
    expected = {"bookworm": "12", "trixie": "13"}[testbed.suite]
    assert (release["VERSION_CODENAME"], release["VERSION_ID"]) == (testbed.suite, expected)
    # Its own systemd and Python, not the host's: 252 and 3.11 on 12, 257 and 3.13 on 13.
    systemd = testbed.run(["systemctl", "--version"]).stdout.split()[1]
    python = testbed.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[1])"])
    assert (int(systemd), int(python.stdout)) == {"bookworm": (252, 11), "trixie": (257, 13)}[
        testbed.suite
    ]


def test_the_system_bus_is_the_one_asked_for(testbed):
    daemons = testbed.system_bus_daemons()
    if testbed.bus == "dbus-broker":
        # dbus-broker-launch holds the socket and hands it to dbus-broker.
        assert daemons and all(d.startswith("dbus-broker") for d in daemons), daemons
        assert "dbus-broker" in testbed.systemctl("show", "-P", "Id", "dbus.service").stdout
        # dbus-daemon may be installed (the dbus package) but does not run.
        assert testbed.run(["pgrep", "-x", "dbus-daemon"], check=False).returncode == 1
    else:
        assert daemons == ["dbus-daemon"], daemons
        assert testbed.run(["pgrep", "-f", "dbus-broker"], check=False).returncode == 1


def test_systemctl_and_busctl_from_the_host(testbed):
    # /run/systemd/machines/NAME makes -M NAME reach the container.
    out = subprocess.run(
        ["systemctl", "-M", testbed.name, "is-system-running"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.stdout.strip() == "running"
    out = subprocess.run(
        [
            "busctl",
            "-M",
            testbed.name,
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "GetNameOwner",
            "s",
            "org.freedesktop.systemd1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.startswith('s ":1.')


def test_busctl_talks_to_the_system_bus(testbed):
    names = testbed.run(["busctl", "--system", "--list", "--no-pager", "--no-legend", "list"])
    assert "org.freedesktop.systemd1" in names.stdout
    assert "org.freedesktop.login1" in names.stdout


def test_polkitd_is_bus_activated(testbed):
    testbed.systemctl("stop", "polkit.service")
    assert testbed.systemctl("is-active", "polkit.service", check=False).stdout.strip() in (
        "inactive",
        "failed",
    )
    # A call to its name makes dbus-daemon ask systemd to start it.
    out = testbed.run(["busctl", "call", *POLKIT], user=testbed.user)
    assert out.stdout.strip() == 'v s "js"'
    assert testbed.systemctl("is-active", "polkit.service").stdout.strip() == "active"


def test_unprivileged_user(testbed):
    assert testbed.run(["id", "-un"], user=testbed.user).stdout == f"{testbed.user}\n"
    assert testbed.run(["id", "-u"], user=testbed.user).stdout.strip() != "0"
    uid = testbed.run(["id", "-u"], user=testbed.user).stdout.strip()
    # The user reaches the system bus, which sees it as that user.
    seen = testbed.run(["/usr/bin/python3", "-c", OWN_UID], user=testbed.user).stdout
    assert seen.strip() == uid
    # busctl list includes the caller's own connection: systemd 252 shows its
    # process and user; systemd 257 lists it with no details at all, as the
    # newest unique name.
    out = testbed.run(["busctl", "--no-legend", "--no-pager", "list"], user=testbed.user)
    rows = [line.split() for line in out.stdout.splitlines()]
    if testbed.suite == "bookworm":
        own = [row for row in rows if row[2:3] == ["busctl"]]
        assert own and own[0][3] == testbed.user, out.stdout
    else:
        unique = [row for row in rows if row[0].startswith(":")]
        newest = max(unique, key=lambda row: int(row[0].split(".")[1]))
        assert newest[1:] == ["-"] * 7, out.stdout
    # And it is no root for systemd.
    denied = testbed.run(["systemctl", "stop", "dbus.service"], user=testbed.user, check=False)
    assert denied.returncode != 0


def test_randomd_dependencies_are_in_the_image(testbed):
    # The container has no network: apt-get can only install the .deb if
    # everything it depends on is already there.
    modules = "dbus_next, dbus_fast, systemd.daemon, systemd.journal"
    testbed.run(["/usr/bin/python3", "-c", f"import {modules}"])


def test_journal_holds_structured_fields(testbed):
    token = secrets.token_hex(8)
    testbed.write_file(
        "/usr/local/lib/testbed/log.py",
        "from systemd import journal\n"
        f"journal.send('hello from the test bed', TESTBED_TOKEN='{token}')\n",
    )
    testbed.run(
        [
            "systemd-run",
            "--wait",
            "--quiet",
            "--unit",
            "testbed-log",
            "/usr/bin/python3",
            "/usr/local/lib/testbed/log.py",
        ]
    )

    def entry():
        return [e for e in testbed.journal("testbed-log") if e.get("TESTBED_TOKEN") == token]

    [record] = testbed.wait_for(entry, timeout=10, what="the journal entry")
    assert record["MESSAGE"] == "hello from the test bed"
    assert record["_SYSTEMD_UNIT"] == "testbed-log.service"


def test_run_kills_a_command_that_times_out(testbed):
    with pytest.raises(subprocess.TimeoutExpired):
        testbed.run(["sleep", "300"], timeout=0.5)
    # Nothing of it is left running inside.
    testbed.wait_for(
        lambda: testbed.run(["pgrep", "-x", "sleep"], check=False).returncode == 1,
        timeout=5,
        what="sleep to be gone",
    )


def test_run_reports_failures_with_output(testbed):
    with pytest.raises(subprocess.CalledProcessError, match="oops"):
        testbed.run("echo oops >&2; exit 3")
    assert testbed.run("exit 3", check=False).returncode == 3
