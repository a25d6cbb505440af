"""One error-mapping layer: every failure is a named error with one sentence.

Both bus libraries answer a stray exception with a traceback, log intended
errors as crashes and leave a cancelled async method unanswered
(BUS-LIBRARIES.md); randomd's dispatch must do none of that.
"""

from __future__ import annotations

import subprocess

import harness
import pytest
from clients import SignalRecorder, add_match, error_of

from randomd import dbus
from randomd.dbus import DBusError, Message, MessageType

FAULTY = "org.randomd.Faulty"
PATH = "/org/randomd/Faulty"
FAILED = "org.randomd.Random1.Error.Failed"


@pytest.fixture(scope="module")
def session_bus():
    """A permissive bus: the faulty service is not covered by randomd's policy."""
    process = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                               stdout=subprocess.PIPE, text=True)
    yield process.stdout.readline().strip()
    process.terminate()
    process.wait(harness.TIMEOUT)


@pytest.fixture(scope="module")
def faulty(session_bus, library, tmp_path_factory):
    log = tmp_path_factory.mktemp("faulty") / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [harness.PYTHON, str(harness.REPO / "tests/integration/peers/faulty_service.py"),
             session_bus], stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={"PYTHONPATH": str(harness.REPO), "RANDOMD_BUS_LIBRARY": library})
    assert process.stdout.readline() == "ready\n", log.read_text()
    yield log
    process.kill()
    process.wait(harness.TIMEOUT)


@pytest.fixture
async def bus(session_bus, faulty):
    connection = await dbus.connect(session_bus)
    yield connection
    connection.disconnect()


async def call(bus, member: str, signature: str = "", body=None, interface: str | None = FAULTY,
               path: str = PATH) -> list:
    reply = await bus.call(Message(destination=FAULTY, path=path, interface=interface,
                                   member=member, signature=signature, body=body or []))
    if reply.message_type == MessageType.ERROR:
        raise DBusError(reply.error_name, reply.body[0], reply)
    return reply.body


@pytest.mark.parametrize("member", ["RaiseValueError", "RaiseInAsync", "ReturnWrongType"])
async def test_a_stray_exception_is_answered_as_failed_without_internals(bus, member):
    error = await error_of(call(bus, member))
    assert error.type == FAILED
    assert "Traceback" not in error.text and "secret internals" not in error.text
    assert error.text.count(".") == 1 and error.text.endswith(".")


async def test_a_stray_exception_is_logged_with_its_traceback(bus, faulty):
    await error_of(call(bus, "RaiseValueError"))
    await call(bus, "Echo", "s", ["flush"])
    assert "ValueError: secret internals" in faulty.read_text()


async def test_a_named_error_keeps_its_name_and_sentence(bus):
    error = await error_of(call(bus, "RaiseNamedError"))
    assert (error.type, error.text) == ("org.randomd.Random1.Error.InvalidArgument",
                                        "That will not do.")


async def test_a_named_error_is_not_logged_as_an_error(bus, faulty):
    await error_of(call(bus, "RaiseNamedError"))
    await call(bus, "Echo", "s", ["flush"])
    log = faulty.read_text()
    assert "That will not do." in log and "ERROR: RaiseNamedError" not in log
    assert "Traceback" not in log.split("That will not do.")[-1].split("\n")[0]


async def test_a_cancelled_async_method_still_replies(bus):
    error = await error_of(call(bus, "CancelItself"))
    assert error.type.startswith("org.randomd.Random1.Error.")


async def test_the_service_keeps_serving_after_failures(bus):
    for member in ("RaiseValueError", "RaiseInAsync", "CancelItself", "ReturnWrongType"):
        await error_of(call(bus, member))
    assert await call(bus, "Echo", "s", ["still here"]) == ["still here"]


async def test_a_wrong_signature_is_invalid_args(bus):
    error = await error_of(call(bus, "Echo", "u", [3]))
    assert error.type == "org.freedesktop.DBus.Error.InvalidArgs" and "'s'" in error.text


async def test_an_unknown_method_is_named(bus):
    error = await error_of(call(bus, "Explode"))
    assert error.type == "org.freedesktop.DBus.Error.UnknownMethod" and "Explode" in error.text


async def test_an_unknown_interface_is_named(bus):
    error = await error_of(call(bus, "Echo", "s", ["x"], interface="org.example.Nope"))
    assert error.type == "org.freedesktop.DBus.Error.UnknownInterface"


async def test_an_unknown_object_is_named(bus):
    error = await error_of(call(bus, "Echo", "s", ["x"], path="/nowhere"))
    assert error.type == "org.freedesktop.DBus.Error.UnknownObject" and "/nowhere" in error.text


async def test_a_call_without_interface_finds_the_method(bus):
    assert await call(bus, "Echo", "s", ["x"], interface=None) == ["x"]


async def test_object_manager_signals_come_from_the_manager_path(bus):
    recorder = SignalRecorder(bus)
    await add_match(bus, "type='signal',interface='org.freedesktop.DBus.ObjectManager'")
    await call(bus, "AddChild", "o", [PATH + "/child"])
    await call(bus, "RemoveChild", "o", [PATH + "/child"])
    added = await recorder.wait_for(lambda m: m.member == "InterfacesAdded")
    removed = await recorder.wait_for(lambda m: m.member == "InterfacesRemoved")
    assert (added.path, added.body[0]) == (PATH, PATH + "/child")
    assert (removed.path, removed.body) == (PATH, [PATH + "/child", [FAULTY]])
