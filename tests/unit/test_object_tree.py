"""The object tree of randomd/dbus/tree.py: routing, checks, error mapping, the standard
interfaces, and a reply for every call, with a stand-in bus.

StandInBus is a fake: the real bus (randomd.dbus.Bus) needs a dbus-daemon, and
the system bus's policy needs root.  The tree only hands it messages (post)
and registers its message handler, so the stand-in records the one and calls
the other; the messages themselves are the bus library's own.  The
integration tests (test_error_mapping, test_introspection, test_bad_input)
check the same dispatch on a real bus.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from randomd import errors
from randomd.dbus import Message, MessageFlag, MessageType, Variant
from randomd.dbus.interface import Call, Interface, Signal, dbus_property, method
from randomd.dbus.tree import ObjectTree

ROOT = "/org/example"
CHILD = ROOT + "/things/1"
INTERFACE = "org.example.Thing"
SENDER = ":1.42"
STANDARD = "org.freedesktop.DBus."


class StandInBus:
    """Records what the tree posts and delivers messages to its handler (see the module's
    docstring for why it is a stand-in)."""

    class Writer:
        congested = False

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.handlers: list[Callable[[Any], bool]] = []
        self.writer = self.Writer()
        self._serials = iter(range(1, 1 << 30))
        self._posted = asyncio.Event()

    def add_message_handler(self, handler: Callable[[Any], bool]) -> None:
        self.handlers.append(handler)

    def post(self, msg: Any) -> None:
        self.sent.append(msg)
        self._posted.set()

    def deliver(self, msg: Any) -> bool:
        """Hand *msg* to the handlers as the library would; True if one took it."""
        return any(handler(msg) for handler in self.handlers)

    def call(self, path: str, interface: str | None, member: str, signature: str = "",
             body: list[Any] | None = None, flags: int = 0) -> Any:
        """Deliver a method call from SENDER; returns it (its serial names its reply)."""
        msg = Message(destination="org.example", path=path, interface=interface, member=member,
                      signature=signature, body=body or [], serial=next(self._serials),
                      sender=SENDER, flags=MessageFlag(flags))
        assert self.deliver(msg)
        return msg

    def replies(self, to: Any) -> list[Any]:
        """The replies posted for the call *to*."""
        return [m for m in self.sent if m.message_type in (MessageType.METHOD_RETURN,
                                                           MessageType.ERROR)
                and m.reply_serial == to.serial]

    def reply(self, to: Any) -> Any:
        """The one reply posted for *to*."""
        (reply,) = self.replies(to)
        assert reply.destination == SENDER
        return reply

    async def wait_reply(self, to: Any) -> Any:
        """The one reply for *to*, once posted (an async handler's comes later)."""
        async with asyncio.timeout(5):
            while not self.replies(to):
                self._posted.clear()
                await self._posted.wait()
        return self.reply(to)

    def signals(self, member: str) -> list[Any]:
        return [m for m in self.sent if m.message_type == MessageType.SIGNAL and m.member == member]


def error_of(reply: Any) -> tuple[str, str]:
    assert reply.message_type == MessageType.ERROR, reply.body
    return reply.error_name, reply.body[0]


class Thing(Interface, name=INTERFACE):
    """A test interface with a member of each kind the tree handles."""

    ticked = Signal("Ticked", "u", ("count",))

    def __init__(self) -> None:
        self.level = 3
        self.started = asyncio.Event()  # Later is running, waiting for its gate
        self.gate: asyncio.Future[str] | None = None

    @method("u", "s", ("text",))
    def Echo(self, call: Call, number: int) -> str:
        return str(number)

    @method("", "sb", ("sender", "interactive"))
    def Who(self, call: Call) -> tuple[str, bool]:
        return call.sender, call.interactive

    @method("", "u")  # an out argument without a name
    def Count(self, call: Call) -> int:
        return 7

    @method("s")
    def Refuse(self, call: Call, why: str) -> None:
        raise errors.InvalidArgument(why)

    @method()
    def Broken(self, call: Call) -> None:
        raise RuntimeError("a bug")

    @method("", "u")
    def WrongType(self, call: Call) -> Any:
        return "not a number"

    @method("", "s", ("result",))
    async def Later(self, call: Call) -> str:
        self.gate = asyncio.get_running_loop().create_future()
        self.started.set()
        return await self.gate

    @dbus_property("u", "true")
    def Level(self) -> int:
        return self.level

    @Level.setter
    async def Level(self, call: Call, value: int) -> None:
        if value > 10:
            raise errors.InvalidArgument(f"Level must be at most 10, not {value}.")
        self.level = value

    @dbus_property("s", "const")
    def Name(self) -> str:
        return "thing"


@pytest.fixture
def bus() -> StandInBus:
    return StandInBus()


@pytest.fixture
def thing() -> Thing:
    return Thing()


@pytest.fixture
def tree(bus: StandInBus, thing: Thing) -> ObjectTree:
    """A tree with *thing* at ROOT, which is also its ObjectManager."""
    tree = ObjectTree(bus, ROOT)  # type: ignore[arg-type]
    tree.export(ROOT, thing)
    return tree


async def started(thing: Thing) -> asyncio.Future[str]:
    """The gate of Thing.Later, once a call to it is running."""
    await asyncio.wait_for(thing.started.wait(), 5)
    assert thing.gate is not None
    return thing.gate


# Routing


def test_a_call_is_answered_with_its_result(bus: StandInBus, tree: ObjectTree) -> None:
    call = bus.call(ROOT, INTERFACE, "Echo", "u", [7])
    reply = bus.reply(call)
    assert (reply.message_type, reply.signature, reply.body) == (MessageType.METHOD_RETURN,
                                                                  "s", ["7"])


def test_a_call_without_interface_finds_the_method(bus: StandInBus, tree: ObjectTree) -> None:
    assert bus.reply(bus.call(ROOT, None, "Echo", "u", [8])).body == ["8"]


def test_a_handler_learns_who_calls_and_whether_it_may_be_asked(
        bus: StandInBus, tree: ObjectTree) -> None:
    flags = MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION.value
    assert bus.reply(bus.call(ROOT, INTERFACE, "Who")).body == [SENDER, False]
    assert bus.reply(bus.call(ROOT, INTERFACE, "Who", flags=flags)).body == [SENDER, True]


def test_signals_are_left_to_others(bus: StandInBus, tree: ObjectTree) -> None:
    signal = Message(message_type=MessageType.SIGNAL, path=ROOT, interface=INTERFACE,
                     member="Echo", serial=1, sender=SENDER)
    assert not bus.deliver(signal) and bus.sent == []


def test_an_unknown_path_is_unknown_object(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call("/nowhere", INTERFACE, "Echo", "u", [1]))
    assert error_of(reply) == (STANDARD + "Error.UnknownObject", "No object at path /nowhere.")


def test_the_tree_names_its_own_error_for_a_missing_object(bus: StandInBus) -> None:
    def no_job(path: str) -> errors.RandomdError:
        return errors.NoSuchJob(f"No job at {path}.")

    ObjectTree(bus, ROOT, no_object=no_job)  # type: ignore[arg-type]
    reply = bus.reply(bus.call(CHILD, INTERFACE, "Echo", "u", [1]))
    assert error_of(reply) == (errors.NoSuchJob.dbus_name, f"No job at {CHILD}.")


def test_an_unknown_interface_is_unknown_interface(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, "org.example.Other", "Echo", "u", [1]))
    assert error_of(reply) == (STANDARD + "Error.UnknownInterface",
                               f"Object {ROOT} has no interface org.example.Other.")


def test_an_unknown_method_is_unknown_method(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, INTERFACE, "Nothing"))
    assert error_of(reply) == (STANDARD + "Error.UnknownMethod",
                               f"Object {ROOT} has no method 'Nothing'.")


def test_an_unknown_member_of_a_standard_interface_is_unknown_method(
        bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, STANDARD + "Properties", "Delete"))
    assert error_of(reply) == (STANDARD + "Error.UnknownMethod",
                               f"{STANDARD}Properties has no method Delete.")


# Signatures


def test_a_wrong_signature_is_invalid_args(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, INTERFACE, "Echo", "s", ["seven"]))
    assert error_of(reply) == (STANDARD + "Error.InvalidArgs",
                               "Echo takes arguments of type 'u', not 's'.")


def test_missing_arguments_are_invalid_args(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, None, "Echo"))
    assert error_of(reply)[0] == STANDARD + "Error.InvalidArgs"


def test_a_standard_method_checks_its_signature(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, STANDARD + "Properties", "Get", "s", [INTERFACE]))
    assert error_of(reply) == (STANDARD + "Error.InvalidArgs",
                               "Get takes arguments of type 'ss', not 's'.")


# Error mapping


def test_a_named_error_is_answered_by_its_name(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, INTERFACE, "Refuse", "s", ["Not today."]))
    assert error_of(reply) == (errors.InvalidArgument.dbus_name, "Not today.")


def test_an_error_text_is_sent_in_ascii(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, INTERFACE, "Refuse", "s", ["caf\u00e9"]))
    assert error_of(reply)[1] == "caf\\xe9"


def test_a_bug_is_failed_without_a_traceback_and_logged(
        bus: StandInBus, tree: ObjectTree, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="randomd.service"):
        reply = bus.reply(bus.call(ROOT, INTERFACE, "Broken"))
    assert error_of(reply) == (errors.Failed.dbus_name,
                               "Internal error in randomd; its log has the details.")
    assert "a bug" in caplog.text and "a bug" not in reply.body[0]


def test_a_result_of_the_wrong_type_is_failed(bus: StandInBus, tree: ObjectTree,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="randomd.service"):
        reply = bus.reply(bus.call(ROOT, INTERFACE, "WrongType"))
    assert error_of(reply)[0] == errors.Failed.dbus_name


def test_no_reply_is_sent_when_none_is_expected(bus: StandInBus, tree: ObjectTree) -> None:
    flags = MessageFlag.NO_REPLY_EXPECTED.value
    bus.call(ROOT, INTERFACE, "Echo", "u", [1], flags=flags)
    bus.call(ROOT, INTERFACE, "Refuse", "s", ["no"], flags=flags)
    assert bus.sent == []


# Async handlers: always a reply


async def test_an_async_handler_is_answered_when_it_returns(
        bus: StandInBus, tree: ObjectTree, thing: Thing) -> None:
    call = bus.call(ROOT, INTERFACE, "Later")
    gate = await started(thing)
    assert bus.replies(call) == [] and tree.calls_in_flight() == 1
    gate.set_result("done")
    assert (await bus.wait_reply(call)).body == ["done"] and tree.calls_in_flight() == 0


async def test_an_async_handler_that_raises_is_answered_with_the_error(
        bus: StandInBus, tree: ObjectTree, thing: Thing) -> None:
    call = bus.call(ROOT, INTERFACE, "Later")
    (await started(thing)).set_exception(errors.QuotaExceeded("Too many."))
    assert error_of(await bus.wait_reply(call)) == (errors.QuotaExceeded.dbus_name, "Too many.")


async def test_a_cancelled_call_is_answered_shutting_down(
        bus: StandInBus, tree: ObjectTree, thing: Thing) -> None:
    call = bus.call(ROOT, INTERFACE, "Later")
    await started(thing)
    await tree.cancel_calls()
    assert error_of(await bus.wait_reply(call)) == (errors.ShuttingDown.dbus_name,
                                         "randomd is shutting down.")


# Properties


def test_get_returns_a_property(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, STANDARD + "Properties", "Get", "ss", [INTERFACE, "Level"]))
    assert reply.body == [Variant("u", 3)]


def test_get_without_interface_finds_the_property(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, STANDARD + "Properties", "Get", "ss", ["", "Name"]))
    assert reply.body == [Variant("s", "thing")]


def test_get_of_an_unknown_property_is_unknown_property(
        bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, STANDARD + "Properties", "Get", "ss", [INTERFACE, "Size"]))
    assert error_of(reply) == (STANDARD + "Error.UnknownProperty",
                               f"Object {ROOT} has no property 'Size'.")


def test_get_on_an_unknown_interface_is_unknown_interface(
        bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, STANDARD + "Properties", "Get", "ss", ["org.x", "Level"]))
    assert error_of(reply)[0] == STANDARD + "Error.UnknownInterface"


def test_get_all_returns_every_property(bus: StandInBus, tree: ObjectTree) -> None:
    for interface in (INTERFACE, ""):
        reply = bus.reply(bus.call(ROOT, STANDARD + "Properties", "GetAll", "s", [interface]))
        assert reply.body == [{"Level": Variant("u", 3), "Name": Variant("s", "thing")}]


async def test_set_changes_a_property_and_announces_it(bus: StandInBus, tree: ObjectTree) -> None:
    call = bus.call(ROOT, STANDARD + "Properties", "Set", "ssv", [INTERFACE, "Level",
                                                                  Variant("u", 9)])
    assert (await bus.wait_reply(call)).message_type == MessageType.METHOD_RETURN
    (changed,) = bus.signals("PropertiesChanged")
    assert (changed.path, changed.body) == (ROOT, [INTERFACE, {"Level": Variant("u", 9)}, []])


async def test_a_setter_that_refuses_changes_nothing(bus: StandInBus, tree: ObjectTree) -> None:
    call = bus.call(ROOT, STANDARD + "Properties", "Set", "ssv", [INTERFACE, "Level",
                                                                  Variant("u", 11)])
    assert error_of(await bus.wait_reply(call)) == (errors.InvalidArgument.dbus_name,
                                         "Level must be at most 10, not 11.")
    assert bus.signals("PropertiesChanged") == []


def test_set_of_a_read_only_property_is_property_read_only(
        bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, STANDARD + "Properties", "Set", "ssv",
                               [INTERFACE, "Name", Variant("s", "other")]))
    assert error_of(reply) == (STANDARD + "Error.PropertyReadOnly", "Property Name is read-only.")


def test_set_with_a_value_of_another_type_is_invalid_args(
        bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, STANDARD + "Properties", "Set", "ssv",
                               [INTERFACE, "Level", Variant("s", "9")]))
    assert error_of(reply) == (STANDARD + "Error.InvalidArgs",
                               "Property Level has type 'u', not 's'.")


# Introspection


def introspect(bus: StandInBus, path: str) -> ET.Element:
    reply = bus.reply(bus.call(path, STANDARD + "Introspectable", "Introspect"))
    assert reply.message_type == MessageType.METHOD_RETURN, reply.body
    return ET.fromstring(reply.body[0])


def test_introspect_describes_the_interface(bus: StandInBus, tree: ObjectTree) -> None:
    (thing,) = [i for i in introspect(bus, ROOT).iter("interface") if i.get("name") == INTERFACE]
    echo = thing.find("method[@name='Echo']")
    assert echo is not None
    assert [(a.get("type"), a.get("name"), a.get("direction")) for a in echo.iter("arg")] == [
        ("u", "number", "in"), ("s", "text", "out")]
    access = {p.get("name"): p.get("access") for p in thing.iter("property")}
    assert access == {"Level": "readwrite", "Name": "read"}
    assert thing.find("signal[@name='Ticked']") is not None


def test_introspect_shows_an_unnamed_out_argument_without_a_name(
        bus: StandInBus, tree: ObjectTree) -> None:
    (thing,) = [i for i in introspect(bus, ROOT).iter("interface") if i.get("name") == INTERFACE]
    count = thing.find("method[@name='Count']")
    assert count is not None
    assert [a.attrib for a in count.iter("arg")] == [{"type": "u", "direction": "out"}]


def test_introspect_lists_the_standard_interfaces(bus: StandInBus, tree: ObjectTree) -> None:
    names = {i.get("name") for i in introspect(bus, ROOT).iter("interface")}
    assert {STANDARD + name for name in ("Peer", "Introspectable", "Properties",
                                         "ObjectManager")} <= names


def test_introspect_lists_children_and_the_nodes_on_their_way(
        bus: StandInBus, tree: ObjectTree) -> None:
    tree.export(CHILD, Thing())
    assert [n.get("name") for n in introspect(bus, ROOT).iter("node") if n.get("name")] == [
        "things"]
    between = introspect(bus, ROOT + "/things")
    assert [n.get("name") for n in between.iter("node") if n.get("name")] == ["1"]
    assert between.find("interface[@name='org.freedesktop.DBus.ObjectManager']") is None


def test_introspect_of_an_unknown_path_is_unknown_object(
        bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call("/nowhere", STANDARD + "Introspectable", "Introspect"))
    assert error_of(reply)[0] == STANDARD + "Error.UnknownObject"


def test_peer_ping_is_answered(bus: StandInBus, tree: ObjectTree) -> None:
    reply = bus.reply(bus.call(ROOT, STANDARD + "Peer", "Ping"))
    assert (reply.message_type, reply.body) == (MessageType.METHOD_RETURN, [])


# ObjectManager


def test_exporting_below_the_manager_announces_interfaces_added(
        bus: StandInBus, tree: ObjectTree) -> None:
    tree.export(CHILD, Thing())
    (added,) = bus.signals("InterfacesAdded")
    assert (added.path, added.interface) == (ROOT, STANDARD + "ObjectManager")
    assert added.body == [CHILD, {INTERFACE: {"Level": Variant("u", 3),
                                              "Name": Variant("s", "thing")}}]


def test_unexporting_announces_interfaces_removed(bus: StandInBus, tree: ObjectTree) -> None:
    tree.export(CHILD, Thing())
    tree.unexport(CHILD)
    (removed,) = bus.signals("InterfacesRemoved")
    assert (removed.path, removed.body) == (ROOT, [CHILD, [INTERFACE]])
    reply = bus.reply(bus.call(CHILD, INTERFACE, "Echo", "u", [1]))
    assert error_of(reply)[0] == STANDARD + "Error.UnknownObject"


def test_the_manager_itself_is_not_announced(bus: StandInBus, tree: ObjectTree) -> None:
    assert bus.signals("InterfacesAdded") == []


def test_get_managed_objects_lists_the_objects_below(bus: StandInBus, tree: ObjectTree) -> None:
    tree.export(CHILD, Thing())
    reply = bus.reply(bus.call(ROOT, STANDARD + "ObjectManager", "GetManagedObjects"))
    assert reply.body == [{CHILD: {INTERFACE: {"Level": Variant("u", 3),
                                               "Name": Variant("s", "thing")}}}]


def test_get_managed_objects_elsewhere_is_unknown_method(
        bus: StandInBus, tree: ObjectTree) -> None:
    tree.export(CHILD, Thing())
    reply = bus.reply(bus.call(CHILD, STANDARD + "ObjectManager", "GetManagedObjects"))
    assert error_of(reply) == (STANDARD + "Error.UnknownMethod",
                               f"Object {CHILD} does not implement {STANDARD}ObjectManager.")


def test_a_unicast_signal_names_its_destination(bus: StandInBus, tree: ObjectTree) -> None:
    tree.emit(ROOT, INTERFACE, "Ticked", "u", [1], destination=SENDER)
    (ticked,) = bus.signals("Ticked")
    assert (ticked.destination, ticked.body) == (SENDER, [1])
    assert ticked.flags & MessageFlag.NO_REPLY_EXPECTED
