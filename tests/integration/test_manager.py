"""The manager object: Quick, Bytes and the properties of API.md, on the real bus."""

from __future__ import annotations

import harness
import pytest
from clients import SignalRecorder, add_match, call, error_of, get_property, set_property

from randomd import api, dbus

INVALID_ARGUMENT = api.ERROR_PREFIX + "InvalidArgument"


async def test_quick_returns_a_decimal_number_below_two_to_the_bits(randomd, client):
    (number,) = await call(client, "Quick", "u", [16])
    assert number.isdigit() and 0 <= int(number) < 2**16


async def test_quick_varies_between_calls(randomd, client):
    numbers = {(await call(client, "Quick", "u", [128]))[0] for _ in range(5)}
    assert len(numbers) == 5


async def test_quick_accepts_max_quick_bits(randomd, client):
    (number,) = await call(client, "Quick", "u", [4096])
    assert int(number) < 2**4096


@pytest.mark.parametrize("bits", [0, 4097, 2**32 - 1])
async def test_quick_refuses_bits_outside_the_limit(randomd, client, bits):
    error = await error_of(call(client, "Quick", "u", [bits]))
    assert error.type == INVALID_ARGUMENT
    assert "MaxQuickBits" in error.text and "Traceback" not in error.text


def test_quick_answers_an_unprivileged_user(randomd, system_bus):
    result = harness.busctl(system_bus, "call", api.BUS_NAME, api.MANAGER_PATH,
                            api.MANAGER_INTERFACE, "Quick", "u", "8", user=harness.TEST_USER)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('s "')


async def test_bytes_returns_count_bytes(randomd, client):
    (data,) = await call(client, "Bytes", "u", [33])
    assert isinstance(data, (bytes, bytearray)) and len(data) == 33


@pytest.mark.parametrize("count", [0, 65537])
async def test_bytes_refuses_counts_outside_the_limit(randomd, client, count):
    error = await error_of(call(client, "Bytes", "u", [count]))
    assert error.type == INVALID_ARGUMENT and "MaxBytes" in error.text


async def test_get_all_lists_every_property_of_the_api(randomd, client):
    (values,) = await call(client, "GetAll", "s", [api.MANAGER_INTERFACE],
                           interface="org.freedesktop.DBus.Properties")
    assert {name: variant.signature for name, variant in values.items()} == {
        "Version": "s", "MaxQuickBits": "u", "MaxBytes": "u", "MaxSlowBits": "u",
        "MaxJobs": "u", "MaxJobsPerUser": "u", "SlowBitInterval": "d",
        "ActiveJobs": "u", "JobsStarted": "t"}


async def test_properties_report_the_configured_limits(start_randomd):
    daemon = start_randomd("MaxQuickBits = 100\nMaxBytes = 7\nMaxJobsPerUser = 3\n"
                           "SlowBitInterval = 0.5\n").wait_ready()
    bus = await connect(daemon.bus)
    assert await get_property(bus, "MaxQuickBits") == 100
    assert await get_property(bus, "MaxBytes") == 7
    assert await get_property(bus, "MaxJobsPerUser") == 3
    assert await get_property(bus, "SlowBitInterval") == 0.5
    bus.disconnect()


async def test_quick_follows_the_configured_limit(start_randomd):
    daemon = start_randomd("MaxQuickBits = 100\n").wait_ready()
    bus = await connect(daemon.bus)
    error = await error_of(call(bus, "Quick", "u", [101]))
    assert error.type == INVALID_ARGUMENT and "100" in error.text
    bus.disconnect()


async def test_root_sets_slow_bit_interval_and_it_is_announced(start_randomd):
    daemon = start_randomd().wait_ready()
    bus = await connect(daemon.bus)
    recorder = SignalRecorder(bus)
    await add_match(bus, f"type='signal',sender='{api.BUS_NAME}',member='PropertiesChanged'")
    await set_property(bus, "SlowBitInterval", "d", 1.5)
    changed = await recorder.wait_for(lambda m: m.member == "PropertiesChanged"
                                      and "SlowBitInterval" in m.body[1])
    assert changed.path == api.MANAGER_PATH and changed.body[1]["SlowBitInterval"].value == 1.5
    assert await get_property(bus, "SlowBitInterval") == 1.5
    bus.disconnect()


@pytest.mark.parametrize("seconds", [-0.1, 60.5, float("inf"), float("nan")])
async def test_slow_bit_interval_outside_zero_to_sixty_is_refused(randomd, client, seconds):
    error = await error_of(set_property(client, "SlowBitInterval", "d", seconds))
    assert error.type == INVALID_ARGUMENT


async def test_writing_a_read_only_property_is_refused(randomd, client):
    error = await error_of(set_property(client, "MaxJobs", "u", 5))
    assert error.type == "org.freedesktop.DBus.Error.PropertyReadOnly"


async def test_writing_a_property_with_the_wrong_type_is_refused(randomd, client):
    error = await error_of(set_property(client, "SlowBitInterval", "s", "fast"))
    assert error.type == "org.freedesktop.DBus.Error.InvalidArgs"


async def test_unknown_property_is_named(randomd, client):
    error = await error_of(get_property(client, "Colour"))
    assert error.type == "org.freedesktop.DBus.Error.UnknownProperty" and "Colour" in error.text


async def test_version_is_the_package_version(randomd, client):
    from randomd import __version__
    assert await get_property(client, "Version") == __version__


async def connect(system_bus: harness.SystemBus):
    return await dbus.connect(system_bus.address)
