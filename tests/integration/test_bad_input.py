"""Bad input: every method and property, called wrongly, gets a named error and one sentence.

Each test sends one kind of wrong call; after every test an autouse fixture
checks that randomd still runs and still answers Quick.

The bus here is the system-like bus with the shipped policy plus one local
rule that lets every method call through to randomd (any interface, or
none): the shipped policy alone stops unknown interfaces at the bus
(test_the_shipped_policy_stops_unknown_interfaces_at_the_bus), and randomd
must stay correct where an administrator's policy is wider.

Covered elsewhere, not repeated here: Quick/Bytes/Slow out of range at 0, the
limit + 1 and 2**32 - 1 (test_manager, test_slow_jobs), SlowBitInterval at
-0.1, 60.5, inf and nan, a write to MaxJobs, SlowBitInterval written as a
string, an unknown property (test_manager), Wait on job 99
(test_slow_jobs), the error-mapping layer against a faulty service
(test_error_mapping).
"""

from __future__ import annotations

import asyncio
import re
import subprocess

import harness
import pytest
from clients import call, error_of, get_property, set_property

from randomd import api, dbus
from randomd.dbus import Message, MessageFlag, MessageType, Variant

ERROR = api.ERROR_PREFIX
DBUS_ERROR = "org.freedesktop.DBus.Error."
INVALID_ARGS = DBUS_ERROR + "InvalidArgs"
PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PEER = "org.freedesktop.DBus.Peer"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
# Jobs run for as long as a test needs them (256 bits at 60 s a bit).
CONFIG = "SlowBitInterval = 60\n"
# dbus-daemon's default max_message_size (the system bus keeps it): 32 MiB.
BUS_MAX_MESSAGE = 32 * 1024 * 1024
# Lets every method call reach randomd, whatever its interface.

MANAGER_READ_ONLY = {"Version": ("s", "9.9"), "MaxQuickBits": ("u", 8), "MaxBytes": ("u", 8),
                     "MaxSlowBits": ("u", 8), "MaxJobs": ("u", 8), "MaxJobsPerUser": ("u", 8),
                     "ActiveJobs": ("u", 0), "JobsStarted": ("t", 0)}
JOB_PROPERTIES = {"Id": ("s", "7"), "Bits": ("u", 8), "BitsDone": ("u", 8),
                  "Progress": ("d", 1.0), "State": ("s", "completed"), "Error": ("s", ""),
                  "OwnerUID": ("u", 0), "Owner": ("s", ":1.1"), "Created": ("t", 1),
                  "Finished": ("t", 1)}


def assert_named(error: dbus.DBusError, name: str) -> None:
    """*error* is *name*, explained in one sentence without internals."""
    assert error.type == name, (error.type, error.text)
    text = error.text
    assert text and "\n" not in text and text.endswith("."), text
    assert not re.search(r"[.!?]\s+[A-Z]", text), f"more than one sentence: {text}"
    assert "Traceback" not in text and 'File "' not in text, text


# -- fixtures --------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(open_bus, library):
    randomd = harness.Randomd(open_bus, library, CONFIG).wait_ready()
    yield randomd
    randomd.stop()


@pytest.fixture
async def bus(daemon):
    """A root client; after the test it cancels every job (jobs outlive their connection)."""
    connection = await dbus.connect(daemon.bus.address)
    yield connection
    await call(connection, "CancelAll")
    connection.disconnect()


@pytest.fixture(autouse=True)
async def still_serving(daemon):
    """After each test: randomd runs and answers Quick on a fresh connection."""
    yield
    assert daemon.process.poll() is None, daemon.stderr()
    connection = await dbus.connect(daemon.bus.address)
    try:
        (number,) = await call(connection, "Quick", "u", [8])
        assert 0 <= int(number) < 256
    finally:
        connection.disconnect()
    assert "Traceback" not in daemon.stderr()


@pytest.fixture
async def job(bus) -> str:
    (path,) = await call(bus, "Slow", "u", [256])
    return path


async def raw(bus, path: str, interface: str | None, member: str, signature: str = "",
              body: list | None = None) -> dbus.DBusError:
    """The error randomd answers to one call (fails if it answers otherwise)."""
    return await error_of(call(bus, member, signature, body or [], path=path,
                               interface=interface))


# -- wrong signatures ------------------------------------------------------

MANAGER_WRONG_SIGNATURES = [
    ("Quick", "", []), ("Quick", "s", ["8"]), ("Quick", "i", [8]), ("Quick", "uu", [8, 8]),
    ("Quick", "t", [8]), ("Quick", "y", [8]), ("Quick", "au", [[8]]),
    ("Quick", "v", [Variant("u", 8)]),
    ("Bytes", "", []), ("Bytes", "s", ["8"]), ("Bytes", "uu", [8, 8]), ("Bytes", "d", [8.0]),
    ("Slow", "", []), ("Slow", "d", [8.0]), ("Slow", "(u)", [[8]]), ("Slow", "q", [8]),
    ("CancelAll", "u", [1]), ("CancelAll", "s", [""]),
]


@pytest.mark.parametrize("member, signature, body", MANAGER_WRONG_SIGNATURES,
                         ids=[f"{m}-{s or 'empty'}" for m, s, _ in MANAGER_WRONG_SIGNATURES])
async def test_manager_method_with_a_wrong_signature_is_invalid_args(bus, member, signature,
                                                                     body):
    error = await raw(bus, api.MANAGER_PATH, api.MANAGER_INTERFACE, member, signature, body)
    assert_named(error, INVALID_ARGS)
    assert member in error.text and f"'{signature}'" in error.text


@pytest.mark.parametrize("member, signature, body", [
    ("Wait", "u", [1]), ("Wait", "s", ["x"]), ("Cancel", "b", [True]), ("Cancel", "ay", [b"x"])])
async def test_job_method_with_a_wrong_signature_is_invalid_args(bus, job, member, signature,
                                                                 body):
    error = await raw(bus, job, api.JOB_INTERFACE, member, signature, body)
    assert_named(error, INVALID_ARGS)


STANDARD_WRONG_SIGNATURES = [
    (PROPERTIES, "Get", "", []), (PROPERTIES, "Get", "s", [api.MANAGER_INTERFACE]),
    (PROPERTIES, "Get", "sss", [api.MANAGER_INTERFACE, "Version", "x"]),
    (PROPERTIES, "Get", "su", [api.MANAGER_INTERFACE, 1]),
    (PROPERTIES, "GetAll", "", []), (PROPERTIES, "GetAll", "u", [1]),
    (PROPERTIES, "GetAll", "ss", [api.MANAGER_INTERFACE, "x"]),
    (PROPERTIES, "Set", "ss", [api.MANAGER_INTERFACE, "SlowBitInterval"]),
    (PROPERTIES, "Set", "ssd", [api.MANAGER_INTERFACE, "SlowBitInterval", 1.0]),
    (PROPERTIES, "Set", "ssvv", [api.MANAGER_INTERFACE, "SlowBitInterval", Variant("d", 1.0),
                                 Variant("d", 1.0)]),
    (INTROSPECTABLE, "Introspect", "s", ["x"]),
    (PEER, "Ping", "u", [1]), (PEER, "GetMachineId", "s", ["x"]),
    (OBJECT_MANAGER, "GetManagedObjects", "s", ["x"]),
]


@pytest.mark.parametrize("interface, member, signature, body", STANDARD_WRONG_SIGNATURES,
                         ids=[f"{m}-{s or 'empty'}" for _, m, s, _ in STANDARD_WRONG_SIGNATURES])
async def test_standard_method_with_a_wrong_signature_is_invalid_args(bus, interface, member,
                                                                      signature, body):
    error = await raw(bus, api.MANAGER_PATH, interface, member, signature, body)
    assert_named(error, INVALID_ARGS)


# -- out of range and extreme values ---------------------------------------


async def test_bytes_of_two_to_the_32_minus_one_is_invalid_argument(bus):
    error = await raw(bus, api.MANAGER_PATH, api.MANAGER_INTERFACE, "Bytes", "u", [2**32 - 1])
    assert_named(error, ERROR + "InvalidArgument")
    assert "MaxBytes" in error.text


@pytest.mark.parametrize("seconds", [float("-inf"), -1e-300, 60.000001, 1e308, -60.0])
async def test_slow_bit_interval_beyond_its_range_is_invalid_argument(bus, seconds):
    error = await error_of(set_property(bus, "SlowBitInterval", "d", seconds))
    assert_named(error, ERROR + "InvalidArgument")
    assert await get_property(bus, "SlowBitInterval") == 60.0


async def test_slow_bit_interval_accepts_both_ends_of_its_range(bus):
    try:
        for seconds in (0.0, 60.0, 5e-324):
            await set_property(bus, "SlowBitInterval", "d", seconds)
            assert await get_property(bus, "SlowBitInterval") == seconds
    finally:
        await set_property(bus, "SlowBitInterval", "d", 60.0)


# -- wrong object paths ----------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/org", "/org/randomd", "/org/randomd/Random2",
                                  api.JOBS_PATH, api.MANAGER_PATH + "/nothing",
                                  api.MANAGER_PATH + "/jobs/1/extra"])
async def test_a_manager_call_on_a_path_without_an_object_is_unknown_object(bus, path):
    error = await raw(bus, path, api.MANAGER_INTERFACE, "Quick", "u", [8])
    assert_named(error, DBUS_ERROR + "UnknownObject")
    assert path in error.text


async def test_a_job_method_on_the_manager_is_unknown_interface(bus):
    error = await raw(bus, api.MANAGER_PATH, api.JOB_INTERFACE, "Wait")
    assert_named(error, DBUS_ERROR + "UnknownInterface")


async def test_a_manager_method_on_a_job_is_unknown_interface(bus, job):
    error = await raw(bus, job, api.MANAGER_INTERFACE, "Quick", "u", [8])
    assert_named(error, DBUS_ERROR + "UnknownInterface")


async def test_a_manager_method_on_a_job_without_interface_is_unknown_method(bus, job):
    error = await raw(bus, job, None, "Quick", "u", [8])
    assert_named(error, DBUS_ERROR + "UnknownMethod")


async def test_get_managed_objects_on_a_job_is_unknown_method(bus, job):
    error = await raw(bus, job, OBJECT_MANAGER, "GetManagedObjects")
    assert_named(error, DBUS_ERROR + "UnknownMethod")


# -- invalid job ids -------------------------------------------------------

BAD_JOB_IDS = ["0", "abc", "99999999999999999999", "_1", "1_0", "x" * 200]
JOB_CALLS = [
    (api.JOB_INTERFACE, "Wait", "", []), (api.JOB_INTERFACE, "Cancel", "", []),
    (PROPERTIES, "Get", "ss", [api.JOB_INTERFACE, "State"]),
    (PROPERTIES, "GetAll", "s", [api.JOB_INTERFACE]),
    (PROPERTIES, "Set", "ssv", [api.JOB_INTERFACE, "State", Variant("s", "completed")]),
    (INTROSPECTABLE, "Introspect", "", []),
]


@pytest.mark.parametrize("job_id", BAD_JOB_IDS, ids=lambda i: i[:24])
@pytest.mark.parametrize("interface, member, signature, body", JOB_CALLS,
                         ids=[m for _, m, _, _ in JOB_CALLS])
async def test_a_call_to_an_invalid_job_id_is_no_such_job(bus, job_id, interface, member,
                                                          signature, body):
    error = await raw(bus, f"{api.JOBS_PATH}/{job_id}", interface, member, signature, body)
    assert_named(error, ERROR + "NoSuchJob")


async def test_a_job_id_with_a_leading_zero_is_no_such_job(bus, job):
    job_id = job.rsplit("/", 1)[1]
    error = await raw(bus, f"{api.JOBS_PATH}/0{job_id}", api.JOB_INTERFACE, "Wait")
    assert_named(error, ERROR + "NoSuchJob")


# -- unknown interfaces and members ----------------------------------------


async def test_the_shipped_policy_stops_unknown_interfaces_at_the_bus(start_randomd):
    """Without the local rule, the bus refuses them: they never reach randomd."""
    shipped = start_randomd(CONFIG).wait_ready()
    connection = await dbus.connect(shipped.bus.address)
    try:
        for interface in ("org.example.Nope", None):
            error = await raw(connection, api.MANAGER_PATH, interface, "Quick", "u", [8])
            assert error.type == DBUS_ERROR + "AccessDenied", error.text
        await call(connection, "Quick", "u", [8])
    finally:
        connection.disconnect()


@pytest.mark.parametrize("interface", ["org.example.Nope", "org.randomd.Random2",
                                       "org.randomd.Random1.Jobs"])
async def test_an_unknown_interface_is_unknown_interface(bus, interface):
    error = await raw(bus, api.MANAGER_PATH, interface, "Quick", "u", [8])
    assert_named(error, DBUS_ERROR + "UnknownInterface")
    assert interface in error.text


@pytest.mark.parametrize("interface, member", [
    (api.MANAGER_INTERFACE, "Frobnicate"), (api.MANAGER_INTERFACE, "quick"),
    (api.MANAGER_INTERFACE, "Wait"), (None, "Frobnicate"),
    (PROPERTIES, "Frobnicate"), (INTROSPECTABLE, "IntrospectAll"), (PEER, "Pong"),
    (OBJECT_MANAGER, "GetObjects")])
async def test_an_unknown_member_is_unknown_method(bus, interface, member):
    error = await raw(bus, api.MANAGER_PATH, interface, member)
    assert_named(error, DBUS_ERROR + "UnknownMethod")
    assert member in error.text


async def test_a_call_without_interface_finds_the_manager_method(bus):
    (number,) = await call(bus, "Quick", "u", [8], interface=None)
    assert 0 <= int(number) < 256


@pytest.mark.parametrize("member, signature, body", [
    ("Get", "ss", ["org.example.Nope", "Version"]), ("GetAll", "s", ["org.example.Nope"]),
    ("Get", "ss", [api.JOB_INTERFACE, "State"]), ("GetAll", "s", [api.JOB_INTERFACE]),
    ("Set", "ssv", ["org.example.Nope", "SlowBitInterval", Variant("d", 1.0)])])
async def test_properties_of_an_unknown_interface_are_unknown_interface(bus, member, signature,
                                                                         body):
    error = await raw(bus, api.MANAGER_PATH, PROPERTIES, member, signature, body)
    assert_named(error, DBUS_ERROR + "UnknownInterface")


@pytest.mark.parametrize("name", ["", "version", "Finished", "x" * 1000])
async def test_an_unknown_property_name_is_unknown_property(bus, name):
    error = await raw(bus, api.MANAGER_PATH, PROPERTIES, "Get", "ss",
                      [api.MANAGER_INTERFACE, name])
    assert_named(error, DBUS_ERROR + "UnknownProperty")


async def test_setting_an_unknown_property_is_unknown_property(bus):
    error = await error_of(set_property(bus, "Colour", "s", "blue"))
    assert_named(error, DBUS_ERROR + "UnknownProperty")


# -- writes to read-only properties, and wrong variant types ---------------


@pytest.mark.parametrize("name", MANAGER_READ_ONLY)
async def test_writing_a_read_only_manager_property_is_property_read_only(bus, name):
    before = await get_property(bus, name)
    signature, value = MANAGER_READ_ONLY[name]
    error = await error_of(set_property(bus, name, signature, value))
    assert_named(error, DBUS_ERROR + "PropertyReadOnly")
    assert name in error.text
    assert await get_property(bus, name) == before


@pytest.mark.parametrize("name", JOB_PROPERTIES)
async def test_writing_a_job_property_is_property_read_only(bus, job, name):
    signature, value = JOB_PROPERTIES[name]
    error = await error_of(set_property(bus, name, signature, value, api.JOB_INTERFACE, job))
    assert_named(error, DBUS_ERROR + "PropertyReadOnly")
    assert await get_property(bus, "State", api.JOB_INTERFACE, job) == "running"


@pytest.mark.parametrize("signature, value", [
    ("u", 1), ("i", -1), ("t", 2**64 - 1), ("x", -(2**63)), ("y", 1), ("b", True),
    ("s", "1.0"), ("ad", [1.0]), ("(d)", [1.0]), ("a{sd}", {"s": 1.0}),
    ("v", Variant("d", 1.0))])
async def test_setting_slow_bit_interval_with_a_wrong_variant_type_is_invalid_args(
        bus, signature, value):
    error = await error_of(set_property(bus, "SlowBitInterval", signature, value))
    assert_named(error, INVALID_ARGS)
    assert "'d'" in error.text
    assert await get_property(bus, "SlowBitInterval") == 60.0


# -- flags and text that the bus libraries mishandle -------------------------
# Each of these has a randomd of its own: a failure here would take the
# module's randomd, and every later test, with it.

UNPRIVILEGED = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def busctl_as_nobody(bus: harness.SystemBus, *args: str):
    """busctl (sd-bus: a client that marshals correctly) as an unprivileged user."""
    return asyncio.to_thread(
        subprocess.run, [*UNPRIVILEGED, "busctl", f"--address={bus.address}", *args],
        capture_output=True, text=True, timeout=harness.TIMEOUT)


async def assert_serving(daemon: harness.Randomd) -> None:
    connection = await dbus.connect(daemon.bus.address)
    try:
        (number,) = await call(connection, "Quick", "u", [8])
    except dbus.DBusError as error:
        raise AssertionError(
            f"randomd stopped serving: {error.text}\n{daemon.stderr()}") from None
    finally:
        connection.disconnect()
    assert 0 <= int(number) < 256 and daemon.process.poll() is None


@pytest.mark.parametrize("options", [
    ["--expect-reply=no"],  # flags 5, with busctl's default ALLOW_INTERACTIVE_AUTHORIZATION
    ["--auto-start=no"],  # 6
    ["--expect-reply=no", "--auto-start=no"],  # 7
], ids=["5", "6", "7"])
async def test_a_call_with_several_flags_from_another_user_is_served(start_randomd, options):
    """dbus-fast 1.84.2's reader knows single flags only (dbus-fast issue 239)."""
    daemon = start_randomd().wait_ready()
    result = await busctl_as_nobody(daemon.bus, "call", *options, api.BUS_NAME,
                                    api.MANAGER_PATH, api.MANAGER_INTERFACE, "Quick", "u", "8")
    assert result.returncode == 0, result.stderr
    if "--expect-reply=no" not in options:
        assert result.stdout.startswith('s "'), result.stdout
    await assert_serving(daemon)


@pytest.mark.parametrize("flags", [3, 8, 0x80, 0xFF])
async def test_a_call_with_flag_bits_d_bus_does_not_define_yet_is_served(start_randomd, flags):
    """The bus passes undefined flag bits on; they must be ignored."""
    daemon = start_randomd().wait_ready()
    connection = await dbus.connect(daemon.bus.address)
    msg = Message(destination=api.BUS_NAME, path=api.MANAGER_PATH,
                  interface=api.MANAGER_INTERFACE, member="Quick", signature="u", body=[8],
                  flags=MessageFlag(flags))
    try:
        if flags & MessageFlag.NO_REPLY_EXPECTED.value:
            await connection.send(msg)
        else:
            reply = await asyncio.wait_for(connection.call(msg), harness.TIMEOUT)
            assert reply.message_type == MessageType.METHOD_RETURN, reply.body
    finally:
        connection.disconnect()
    await assert_serving(daemon)


@pytest.mark.parametrize("args, error", [
    (["Get", "ss", api.MANAGER_INTERFACE, "Größe"], "has no property"),
    (["Get", "ss", "Zufälle", "Version"], "has no interface"),
    (["GetAll", "s", "日本"], "has no interface"),
    (["Set", "ssv", api.MANAGER_INTERFACE, "Intervall°", "d", "1"], "has no property"),
], ids=["get-property", "get-interface", "getall-interface", "set-property"])
async def test_a_non_ascii_name_from_another_user_is_a_named_error(start_randomd, args, error):
    """randomd names it back: dbus-fast 1.84.2 writes a string's length in characters,
    not UTF-8 bytes (dbus-fast PR 261), and the bus drops a sender of corrupt messages."""
    daemon = start_randomd().wait_ready()
    result = await busctl_as_nobody(daemon.bus, "call", api.BUS_NAME, api.MANAGER_PATH,
                                    PROPERTIES, *args)
    assert result.returncode != 0 and error in result.stderr, result.stderr
    await assert_serving(daemon)


# -- messages near the bus's size limit ------------------------------------


async def test_a_call_just_below_the_bus_size_limit_is_invalid_args(bus):
    """Quick with a 32 MiB trailing byte array: the bus delivers it, randomd refuses it."""
    payload = bytes(BUS_MAX_MESSAGE - 4096)
    error = await error_of(asyncio.wait_for(
        call(bus, "Quick", "uay", [8, payload]), 60))
    assert_named(error, INVALID_ARGS)
    assert "'uay'" in error.text


async def test_a_call_of_a_million_strings_is_invalid_args(bus):
    """An argument that is costly to unmarshal (a million strings, ~8 MiB)."""
    error = await error_of(asyncio.wait_for(
        call(bus, "Bytes", "uas", [8, ["abc"] * 1_000_000]), 60))
    assert_named(error, INVALID_ARGS)


async def test_a_call_over_the_bus_size_limit_never_reaches_randomd(daemon):
    """The bus drops the sender of a message over 32 MiB; randomd keeps serving (autouse)."""
    sender = await dbus.connect(daemon.bus.address)
    msg = Message(destination=api.BUS_NAME, path=api.MANAGER_PATH,
                  interface=api.MANAGER_INTERFACE, member="Quick", signature="uay",
                  body=[8, bytes(BUS_MAX_MESSAGE + 1)])
    with pytest.raises((ConnectionError, EOFError)):
        await asyncio.wait_for(sender.call(msg), 60)
    with pytest.raises((ConnectionError, EOFError)):
        await asyncio.wait_for(sender.wait_for_disconnect(), harness.TIMEOUT)
