"""Where dbus-daemon and dbus-broker differ, as randomd's users meet it.

Run on either bus (RANDOMD_TESTBED_BUS); each test states what is expected
of the bus the container booted with. Everything else (the shipped policy,
bus activation through systemd) is the same and tested in test_randomd.py.
"""

import time

import pytest

pytestmark = pytest.mark.system

UNIT = "randomd.service"
CONF = "/etc/randomd/randomd.conf"
QUICK = ["busctl", "call", "org.randomd.Random1", "/org/randomd/Random1", "org.randomd.Random1"]
CALL_TIMEOUT = 8  # seconds busctl waits for the reply of the failing activation

# Opens up to int(argv[1]) connections to the system bus (authenticated and
# named with Hello) and keeps them open, then prints how many of them still
# answer a call. dbus-daemon completes the Hello of some connections beyond
# its limit and only then drops them: count those that stay.
CONNECTIONS = """\
import asyncio, sys
from dbus_next import BusType, Message, MessageType
from dbus_next.aio import MessageBus

async def alive(bus):
    try:
        reply = await asyncio.wait_for(bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="GetId")), 5)
        return reply.message_type == MessageType.METHOD_RETURN
    except Exception:
        return False

async def main(most):
    buses = []
    for _ in range(most):
        try:
            buses.append(await asyncio.wait_for(MessageBus(bus_type=BusType.SYSTEM).connect(), 5))
        except Exception:
            break
    print(sum(await asyncio.gather(*map(alive, buses))))

asyncio.run(main(int(sys.argv[1])))
"""


@pytest.fixture
def broken_config(testbed):
    """randomd stopped, with a configuration it refuses at start (exit 78); put back afterwards."""
    shipped = testbed.read_file(CONF)
    testbed.systemctl("stop", UNIT)
    testbed.write_file(CONF, "MaxQuickBits = 0\n")
    try:
        yield
    finally:
        testbed.write_file(CONF, shipped)
        testbed.systemctl("reset-failed", UNIT, check=False)
        # dbus-daemon keeps the failed activation pending for its
        # service_start_timeout (25 s), and would fail the next callers with
        # it: the name owned again ends it.
        testbed.systemctl("start", UNIT)


def test_a_failed_activation_fails_the_call_at_once_on_dbus_broker_only(testbed, broken_config):
    started = time.monotonic()
    r = testbed.run(
        [*QUICK[:1], f"--timeout={CALL_TIMEOUT}", *QUICK[1:], "Quick", "u", "16"],
        user=testbed.user,
        check=False,
        timeout=CALL_TIMEOUT + 20,
    )
    seconds = time.monotonic() - started
    assert r.returncode != 0, r
    # systemd tried, and the daemon refused its configuration.
    result = testbed.systemctl("show", "-P", "ExecMainStatus", UNIT).stdout.strip()
    assert result == "78", result
    if testbed.bus == "dbus-broker":
        # dbus-broker hears from systemd that the start job failed.
        assert "startup job failed" in r.stderr, r
        assert seconds < CALL_TIMEOUT - 2, seconds
    else:
        # dbus-daemon keeps the call pending: the caller's own timeout ends it.
        assert "timed out" in r.stderr.lower(), r
        assert seconds >= CALL_TIMEOUT, seconds


def test_connections_per_uid_are_limited_to_256_by_dbus_daemon_only(testbed):
    testbed.write_file("/run/randomd-test-connections.py", CONNECTIONS)
    out = testbed.run(
        ["/usr/bin/python3", "/run/randomd-test-connections.py", "400"],
        user=testbed.user,
        timeout=120,
    ).stdout
    kept = int(out)
    if testbed.bus == "dbus-broker":
        # No per-uid count of connections (its quotas are on memory and fds).
        assert kept == 400, out
    else:
        # max_connections_per_user, compiled in and left at 256 by system.conf.
        assert kept == 256, out
    # Closed again: others (and this uid) are served.
    testbed.run([*QUICK, "Quick", "u", "16"], user=testbed.user)
