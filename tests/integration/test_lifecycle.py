"""Starting, reloading and stopping randomd, as systemd sees it through sd_notify."""

from __future__ import annotations

import signal
import subprocess

import harness
import pytest
from clients import call, error_of, get_property, set_property

from randomd import api, dbus


def name_owner(bus: harness.SystemBus) -> subprocess.CompletedProcess:
    return harness.busctl(bus, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "NameHasOwner", "s", api.BUS_NAME)


def reload(daemon: harness.Randomd) -> None:
    """SIGHUP, and wait until randomd is ready again."""
    daemon.notify.messages.clear()
    daemon.process.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("READY", "1")


def test_ready_comes_after_the_name_is_owned(start_randomd):
    daemon = start_randomd().wait_ready()
    assert name_owner(daemon.bus).stdout.strip() == "b true"


def test_ready_carries_a_status_line(start_randomd):
    daemon = start_randomd().wait_ready()
    ready = daemon.notify.wait_for("READY", "1")
    assert ready["STATUS"].startswith("Serving")


def test_sigterm_says_stopping_and_exits_zero(start_randomd):
    daemon = start_randomd().wait_ready()
    assert daemon.terminate(signal.SIGTERM) == 0
    daemon.notify.wait_for("STOPPING", "1")


def test_sigint_exits_zero(start_randomd):
    daemon = start_randomd().wait_ready()
    assert daemon.terminate(signal.SIGINT) == 0


def test_the_name_is_released_on_exit(start_randomd):
    daemon = start_randomd().wait_ready()
    daemon.terminate()
    assert name_owner(daemon.bus).stdout.strip() == "b false"


def test_a_bad_config_names_the_key_and_exits_78_before_ready(start_randomd):
    daemon = start_randomd("MaxQuickBits = -3\n")
    assert daemon.process.wait(harness.TIMEOUT) == 78
    assert "MaxQuickBits" in daemon.stderr() and "Traceback" not in daemon.stderr()
    assert not any("READY" in m for m in daemon.notify.messages)


def test_an_unknown_config_key_is_named(start_randomd):
    daemon = start_randomd("MaxQuickBitz = 3\n")
    assert daemon.process.wait(harness.TIMEOUT) == 78
    assert "MaxQuickBitz" in daemon.stderr()


def test_a_taken_name_is_one_line_and_a_nonzero_exit(start_randomd):
    start_randomd().wait_ready()
    second = start_randomd()
    assert second.process.wait(harness.TIMEOUT) == 1
    assert second.stderr().splitlines() == [
        "randomd: org.randomd.Random1 is already owned by another process"]


def test_a_missing_bus_is_one_line_and_a_nonzero_exit(library, tmp_path):
    result = subprocess.run(
        [harness.PYTHON, "-m", "randomd", "--address", f"unix:path={tmp_path}/none",
         "--config", str(tmp_path / "none.conf")],
        env={"PYTHONPATH": str(harness.REPO), "RANDOMD_BUS_LIBRARY": library},
        capture_output=True, text=True, timeout=harness.TIMEOUT)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("randomd: cannot connect to the bus")


def test_losing_the_bus_exits_nonzero(start_randomd):
    daemon = start_randomd().wait_ready()
    daemon.bus.process.kill()
    assert daemon.process.wait(harness.TIMEOUT) != 0


def test_the_watchdog_is_fed_within_its_interval(start_randomd):
    daemon = start_randomd(env={"WATCHDOG_USEC": "1000000"}).wait_ready()
    for _ in range(3):
        daemon.notify.messages.clear()
        daemon.notify.wait_for("WATCHDOG", "1", timeout=0.9)


def test_no_watchdog_pings_without_watchdog_usec(start_randomd):
    daemon = start_randomd().wait_ready()
    daemon.terminate()
    daemon.notify.wait_for("STOPPING", "1")
    assert not any("WATCHDOG" in m for m in daemon.notify.messages)


def test_sighup_reloads_with_reloading_and_monotonic_usec(start_randomd):
    daemon = start_randomd().wait_ready()
    daemon.notify.messages.clear()
    daemon.process.send_signal(signal.SIGHUP)
    reloading = daemon.notify.wait_for("RELOADING", "1")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    daemon.notify.wait_for("READY", "1")


async def test_sighup_applies_a_changed_config(start_randomd):
    daemon = start_randomd("MaxQuickBits = 10\n").wait_ready()
    daemon.config.write_text("MaxQuickBits = 20\n")
    reload(daemon)
    bus = await dbus.connect(daemon.bus.address)
    assert await get_property(bus, "MaxQuickBits") == 20
    bus.disconnect()


async def test_sighup_resets_slow_bit_interval_to_the_configured_value(start_randomd):
    daemon = start_randomd("SlowBitInterval = 2.0\n").wait_ready()
    bus = await dbus.connect(daemon.bus.address)
    await set_property(bus, "SlowBitInterval", "d", 5.0)
    reload(daemon)
    assert await get_property(bus, "SlowBitInterval") == 2.0
    bus.disconnect()


async def test_sighup_with_a_broken_config_keeps_the_old_one(start_randomd):
    daemon = start_randomd("MaxQuickBits = 10\n").wait_ready()
    daemon.config.write_text("MaxQuickBits = 'many'\n")
    reload(daemon)
    bus = await dbus.connect(daemon.bus.address)
    assert await get_property(bus, "MaxQuickBits") == 10
    bus.disconnect()
    assert "keeping the old configuration" in daemon.stderr()


@pytest.mark.parametrize("level, shown", [("debug", True), ("info", False)])
async def test_log_level_controls_debug_messages(start_randomd, level, shown):
    daemon = start_randomd(f'LogLevel = "{level}"\n').wait_ready()
    bus = await dbus.connect(daemon.bus.address)
    await error_of(call(bus, "Quick", "u", [0]))
    bus.disconnect()
    daemon.terminate()
    assert ("DEBUG" in daemon.stderr()) == shown


# Reload(): what ExecReload= calls, so that systemctl reload waits for it.

async def test_reload_applies_a_changed_config_before_it_answers(start_randomd):
    daemon = start_randomd("MaxQuickBits = 10\n").wait_ready()
    daemon.config.write_text("MaxQuickBits = 20\n")
    bus = await dbus.connect(daemon.bus.address)
    await call(bus, "Reload")
    assert await get_property(bus, "MaxQuickBits") == 20
    bus.disconnect()


async def test_reload_says_reloading_then_ready_to_systemd(start_randomd):
    daemon = start_randomd().wait_ready()
    daemon.notify.messages.clear()
    bus = await dbus.connect(daemon.bus.address)
    await call(bus, "Reload")
    bus.disconnect()
    assert int(daemon.notify.wait_for("RELOADING", "1")["MONOTONIC_USEC"]) > 0
    daemon.notify.wait_for("READY", "1")


async def test_reload_of_a_broken_config_fails_naming_the_key_and_keeps_the_old_one(
        start_randomd):
    daemon = start_randomd("MaxQuickBits = 10\n").wait_ready()
    daemon.config.write_text("MaxQuickBits = 'many'\n")
    bus = await dbus.connect(daemon.bus.address)
    error = await error_of(call(bus, "Reload"))
    assert error.type == api.ERROR_PREFIX + "Failed"
    assert error.text.startswith("The configuration was not reloaded: ")
    assert "MaxQuickBits" in error.text
    assert await get_property(bus, "MaxQuickBits") == 10
    bus.disconnect()
    daemon.notify.wait_for("READY", "1")  # still ready: the reload ended
