"""The shipped busconfig policy, enforced by a real dbus-daemon."""

from __future__ import annotations

import subprocess

import harness

from randomd import api

OWN_NAME = ("from randomd import dbus; import asyncio\n"
            "async def main():\n"
            "    b = await dbus.connect()\n"
            "    await b.request_name('org.randomd.Random1')\n"
            "asyncio.run(main())\n")


def own_the_name_as(user: str | None, system_bus: harness.SystemBus) -> subprocess.CompletedProcess:
    return subprocess.run(harness.as_user(user, [harness.PYTHON, "-c", OWN_NAME]),
                          env={**system_bus.env(), "PYTHONPATH": str(harness.REPO)},
                          capture_output=True, text=True, timeout=harness.TIMEOUT)


def test_an_unprivileged_user_cannot_own_the_name(system_bus):
    result = own_the_name_as(harness.TEST_USER, system_bus)
    assert result.returncode != 0 and "not allowed to own" in result.stderr


def test_root_cannot_own_the_name_either(system_bus):
    result = own_the_name_as(None, system_bus)
    assert result.returncode != 0 and "not allowed to own" in result.stderr


def test_randomd_cannot_run_as_another_user(start_randomd):
    daemon = start_randomd(user=harness.TEST_USER)
    assert daemon.process.wait(harness.TIMEOUT) == 1
    lines = daemon.stderr().splitlines()
    assert len(lines) == 1 and lines[0].startswith("randomd: not allowed to own")


def test_standard_interfaces_answer_an_unprivileged_user(randomd, system_bus):
    for args in (["org.freedesktop.DBus.Peer", "Ping"],
                 ["org.freedesktop.DBus.Introspectable", "Introspect"],
                 ["org.freedesktop.DBus.Properties", "GetAll", "s", api.MANAGER_INTERFACE],
                 ["org.freedesktop.DBus.ObjectManager", "GetManagedObjects"]):
        result = harness.busctl(system_bus, "call", api.BUS_NAME, api.MANAGER_PATH, *args,
                                user=harness.TEST_USER)
        assert result.returncode == 0, (args, result.stderr)


def test_an_unlisted_interface_is_denied_by_the_bus(randomd, system_bus):
    result = harness.busctl(system_bus, "call", api.BUS_NAME, api.MANAGER_PATH,
                            "org.example.Unlisted", "Quick", "u", "8", user=harness.TEST_USER)
    assert result.returncode != 0 and "Access denied" in result.stderr
