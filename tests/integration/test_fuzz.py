"""Fuzzing randomd with D-Bus messages that hypothesis builds, over a real bus.

Each message has a random type (method call, mostly), path, interface,
member (the real API's names, and valid garbage), flags (among them
NO_REPLY_EXPECTED and ALLOW_INTERACTIVE_AUTHORIZATION) and a random body
whose signature is built from every D-Bus type but unix fds: basic types,
arrays, dicts, structs and variants, nested.  Half the calls use a real
member with a signature that is right or nearly so, so that the fuzz also
reaches the handlers, not only the signature check.

The bus lets every method call reach randomd (the shipped policy would stop
unknown interfaces first, see test_bad_input), and the client is root, so
that polkit never stands in front of a handler.  Jobs end within JobTimeout,
so every call that waits for a job is answered within the test's bound.

The fuzzing client is dbus-next, whatever library randomd runs on: Debian's
dbus-fast 1.84.2 writes the length of a string in characters instead of
UTF-8 bytes (fixed upstream in dbus-fast PR 261), so a fuzzer on it would
send corrupt messages with every non-ASCII string and be dropped by the bus.

Checked for each call that wants a reply: one comes (error or return) within
CALL_TIMEOUT, an error is one of the names randomd answers with (never
Failed: an internal error) and its text carries no trace of Python or of the
bus library.  At the end: at least MESSAGES_PER_LIBRARY messages were sent,
randomd still runs, answers Quick, and logged no traceback.
"""

from __future__ import annotations

import asyncio
from collections import deque

import dbus_next.aio
import harness
import pytest
from dbus_next import Message, MessageFlag, MessageType, Variant
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from randomd import api

MESSAGES_PER_LIBRARY = 2000
BATCH = 25
EXAMPLES = 90  # x BATCH messages: 2250
CALL_TIMEOUT = 10.0
IN_FLIGHT = 64  # dbus-daemon allows 128 calls awaiting a reply per connection
# Jobs end within JobTimeout whatever SlowBitInterval the fuzz writes, so a
# Wait is answered in time; small results keep the table small.
CONFIG = "SlowBitInterval = 0.01\nJobTimeout = 2\nResultTTL = 1\n"


DBUS_ERROR = "org.freedesktop.DBus.Error."
# What randomd may answer to anything a root client sends.
EXPECTED_ERRORS = {
    api.ERROR_PREFIX + name for name in (
        "InvalidArgument", "QuotaExceeded", "NoSuchJob", "Cancelled", "Expired")
} | {DBUS_ERROR + name for name in (
    "InvalidArgs", "UnknownMethod", "UnknownObject", "UnknownInterface", "UnknownProperty",
    "PropertyReadOnly")}
LEAKS = ("Traceback", 'File "', "dbus_next", "dbus_fast", "ServiceError")

PROPERTIES = "org.freedesktop.DBus.Properties"
INTERFACES = [api.MANAGER_INTERFACE, api.JOB_INTERFACE, PROPERTIES,
              "org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Peer",
              "org.freedesktop.DBus.ObjectManager", "org.freedesktop.DBus"]
# Every member of the API, with its in-signature.
MEMBERS = {"Quick": "u", "Bytes": "u", "Slow": "u", "CancelAll": "", "Wait": "", "Cancel": "",
           "Get": "ss", "GetAll": "s", "Set": "ssv", "Introspect": "", "Ping": "",
           "GetMachineId": "", "GetManagedObjects": "", "Hello": "",
           "NameOwnerChanged": "sss", "PropertiesChanged": "sa{sv}as"}
PROPERTY_NAMES = ["Version", "MaxQuickBits", "MaxBytes", "MaxSlowBits", "MaxJobs",
                  "MaxJobsPerUser", "SlowBitInterval", "ActiveJobs", "JobsStarted", "Id",
                  "Bits", "BitsDone", "Progress", "State", "Error", "OwnerUID", "Owner",
                  "Created", "Finished"]


# -- names -----------------------------------------------------------------

def _clean(name: str) -> bool:
    """Garbage names randomd echoes in its errors must not look like a leak."""
    return not any(word.lower() in name.lower() for word in LEAKS)


name_element = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
garbage_member = name_element.filter(_clean)
garbage_interface = st.lists(name_element, min_size=2, max_size=4).map(".".join).filter(_clean)
garbage_path = st.lists(st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True),
                        max_size=5).map(lambda parts: "/" + "/".join(parts))
real_path = st.sampled_from([api.MANAGER_PATH, "/", "/org", "/org/randomd", api.JOBS_PATH,
                             *(api.job_path(i) for i in range(0, 12)),
                             api.job_path(2**64), api.JOBS_PATH + "/abc"])
paths = st.one_of(real_path, real_path, garbage_path)
interfaces = st.one_of(st.sampled_from(INTERFACES), st.sampled_from(INTERFACES),
                       st.none(), garbage_interface)
members = st.one_of(st.sampled_from(sorted(MEMBERS)), st.sampled_from(sorted(MEMBERS)),
                    garbage_member)


# -- D-Bus types and values --------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=24)
BASIC = {
    "y": st.integers(0, 2**8 - 1), "b": st.booleans(),
    "n": st.integers(-2**15, 2**15 - 1), "q": st.integers(0, 2**16 - 1),
    "i": st.integers(-2**31, 2**31 - 1),
    "u": st.one_of(st.integers(0, 2**32 - 1), st.integers(1, 64),
                   st.sampled_from([0, 1, 8, 256, 257, 4096, 4097, 65536, 65537, 2**32 - 1])),
    "x": st.integers(-2**63, 2**63 - 1), "t": st.integers(0, 2**64 - 1),
    "d": st.floats(allow_nan=True, allow_infinity=True), "s": text,
    "o": st.one_of(garbage_path, real_path),
    "g": st.sampled_from(["", "u", "s", "a{sv}", "(ii)", "v", "aay"]),
}
KEY_TYPES = "ybnqiuxtsog"


def type_trees(depth: int = 0):
    """A D-Bus complete type, as a tree: ("basic", t), ("array", tree),
    ("dict", key, tree), ("struct", [trees]) or ("variant",)."""
    basic = st.sampled_from(sorted(BASIC)).map(lambda t: ("basic", t))
    if depth >= 3:
        return basic
    inner = st.deferred(lambda: type_trees(depth + 1))
    return st.one_of(
        basic, basic,
        inner.map(lambda t: ("array", t)),
        st.tuples(st.sampled_from(KEY_TYPES), inner).map(lambda kv: ("dict", *kv)),
        st.lists(inner, min_size=1, max_size=3).map(lambda ts: ("struct", ts)),
        st.just(("variant",)))


def signature_of(tree) -> str:
    kind = tree[0]
    if kind == "basic":
        return tree[1]
    if kind == "array":
        return "a" + signature_of(tree[1])
    if kind == "dict":
        return "a{" + tree[1] + signature_of(tree[2]) + "}"
    if kind == "struct":
        return "(" + "".join(signature_of(t) for t in tree[1]) + ")"
    return "v"


def values_of(tree, depth: int = 0):
    """A strategy for values of the type *tree*, as both bus libraries marshal them."""
    kind = tree[0]
    if kind == "basic":
        return BASIC[tree[1]]
    if kind == "array":
        if tree[1] == ("basic", "y"):
            return st.binary(max_size=64)
        return st.lists(values_of(tree[1], depth + 1), max_size=4)
    if kind == "dict":
        keys = BASIC[tree[1]]
        return st.dictionaries(keys, values_of(tree[2], depth + 1), max_size=3)
    if kind == "struct":
        return st.tuples(*(values_of(t, depth + 1) for t in tree[1])).map(list)
    if depth >= 3:
        return BASIC["u"].map(lambda v: Variant("u", v))
    return type_trees(depth + 1).flatmap(
        lambda t: values_of(t, depth + 1).map(lambda v: Variant(signature_of(t), v)))


@st.composite
def random_bodies(draw) -> tuple[str, list]:
    trees = draw(st.lists(type_trees(), max_size=4))
    signature = "".join(signature_of(t) for t in trees)
    if len(signature) > 255:
        trees, signature = [], ""
    return signature, [draw(values_of(t)) for t in trees]


@st.composite
def api_bodies(draw, member: str) -> tuple[str, list]:
    """The member's own signature with plausible and extreme values."""
    signature = MEMBERS.get(member, "")
    body = []
    for token in signature.replace("a{sv}", "D").replace("as", "A"):
        if token == "u":
            body.append(draw(st.one_of(st.integers(1, 64), BASIC["u"])))
        elif token == "s":
            body.append(draw(st.one_of(st.sampled_from(INTERFACES + PROPERTY_NAMES + [""]),
                                       text.filter(_clean))))
        elif token == "v":
            signature_, value = draw(st.one_of(
                st.tuples(st.just("d"), st.floats(allow_nan=True, allow_infinity=True)),
                random_bodies().filter(lambda b: len(b[1]) == 1).map(
                    lambda b: (b[0], b[1][0]))))
            body.append(Variant(signature_, value))
        elif token == "D":
            body.append({})
        elif token == "A":
            body.append([])
    return signature, body


# Several at once too, and bits D-Bus does not define yet (the bus passes them on).
FLAGS = [0, MessageFlag.NO_REPLY_EXPECTED.value, MessageFlag.NO_AUTOSTART.value,
         MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION.value, 0x08, 0x80]


# (interface, member) of the API, and where each lives.
AIMED = [(api.MANAGER_INTERFACE, m) for m in ("Quick", "Bytes", "Slow", "CancelAll")] + [
    (api.JOB_INTERFACE, "Wait"), (api.JOB_INTERFACE, "Cancel"),
    (PROPERTIES, "Get"), (PROPERTIES, "GetAll"), (PROPERTIES, "Set"),
    ("org.freedesktop.DBus.Introspectable", "Introspect"), ("org.freedesktop.DBus.Peer", "Ping"),
    ("org.freedesktop.DBus.Peer", "GetMachineId"),
    ("org.freedesktop.DBus.ObjectManager", "GetManagedObjects")]
# Jobs get ids from 1 up as the fuzz starts them (a few dozen per run).
job_path = st.integers(1, 40).map(api.job_path)
aimed_path = st.one_of(st.just(api.MANAGER_PATH), job_path)


@st.composite
def messages(draw) -> Message:
    if draw(st.booleans()):  # aimed at the API: the handlers run
        interface, member = draw(st.sampled_from(AIMED))
        path = draw({api.MANAGER_INTERFACE: st.just(api.MANAGER_PATH),
                     api.JOB_INTERFACE: job_path}.get(interface, aimed_path))
        signature, body = draw(api_bodies(member))
        message_type = MessageType.METHOD_CALL
    else:  # anything
        member = draw(members)
        interface, path = draw(interfaces), draw(paths)
        signature, body = draw(st.one_of(api_bodies(member), random_bodies()))
        message_type = draw(st.sampled_from([MessageType.METHOD_CALL] * 9
                                            + [MessageType.SIGNAL]))
        if message_type == MessageType.SIGNAL and interface is None:
            interface = "org.example.Signal"  # a signal must name its interface
    flags = 0
    for flag in draw(st.lists(st.sampled_from(FLAGS), max_size=2)):
        flags |= flag
    return Message(destination=api.BUS_NAME, path=path, interface=interface, member=member,
                   signature=signature, body=body, flags=MessageFlag(flags),
                   message_type=message_type)


# -- the fuzzer ------------------------------------------------------------


class Fuzzer:
    """A root connection (dbus-next) on an event loop of its own, sending batches."""

    def __init__(self, address: str, daemon_log) -> None:
        self.daemon_log = daemon_log
        self.loop = asyncio.new_event_loop()
        self.bus = self.loop.run_until_complete(_connect(address))
        self.sent = 0
        self.replies = 0
        self.errors: dict[str, int] = {}
        self.history: deque[str] = deque(maxlen=40)  # for the report of a failure

    def send(self, batch: list[Message]) -> None:
        self.loop.run_until_complete(self._send_all(batch))

    async def _send_all(self, batch: list[Message]) -> None:
        in_flight = asyncio.Semaphore(IN_FLIGHT)
        await asyncio.gather(*(self._send_one(msg, in_flight) for msg in batch))

    async def _send_one(self, msg: Message, in_flight: asyncio.Semaphore) -> None:
        self.sent += 1
        self.history.append(describe(msg))
        if (msg.message_type != MessageType.METHOD_CALL
                or msg.flags & MessageFlag.NO_REPLY_EXPECTED):
            await self.bus.send(msg)
            return
        async with in_flight:
            try:
                reply = await asyncio.wait_for(self.bus.call(msg), CALL_TIMEOUT)
            except TimeoutError:
                raise AssertionError(f"no reply in {CALL_TIMEOUT} s to {describe(msg)}; "
                                     f"{self.recent()}") from None
        self.replies += 1
        if reply.message_type == MessageType.ERROR:
            self.errors[reply.error_name] = self.errors.get(reply.error_name, 0) + 1
            text = reply.body[0] if reply.body else ""
            assert reply.error_name in EXPECTED_ERRORS, (
                f"{reply.error_name}: {text} in reply to {describe(msg)}; {self.recent()}")
            assert isinstance(text, str) and text.endswith("."), (text, describe(msg))
            assert not any(leak in text for leak in LEAKS), (text, describe(msg))
        else:
            assert reply.message_type == MessageType.METHOD_RETURN, describe(msg)

    def recent(self) -> str:
        return (f"the end of randomd's log:\n{self.daemon_log()[-2000:]}\n"
                "the last messages sent:\n" + "\n".join(self.history))

    def quick(self, bits: int) -> str:
        msg = Message(destination=api.BUS_NAME, path=api.MANAGER_PATH,
                      interface=api.MANAGER_INTERFACE, member="Quick", signature="u",
                      body=[bits])
        reply = self.loop.run_until_complete(asyncio.wait_for(self.bus.call(msg), CALL_TIMEOUT))
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        return reply.body[0]

    def close(self) -> None:
        self.bus.disconnect()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


async def _connect(address: str) -> dbus_next.aio.MessageBus:
    # dbus-next binds a bus to the event loop running when it is made.
    return await dbus_next.aio.MessageBus(bus_address=address).connect()


def describe(msg: Message) -> str:
    body = repr(msg.body)
    return (f"{msg.message_type.name} {msg.path} {msg.interface}.{msg.member} "
            f"({msg.signature!r}) flags={int(msg.flags)} body={body[:300]}")


# -- fixtures and the test ---------------------------------------------------


@pytest.fixture
def daemon(open_bus, library):
    randomd = harness.Randomd(open_bus, library, CONFIG).wait_ready()
    yield randomd
    randomd.stop()


@pytest.fixture
def fuzzer(daemon):
    fuzzer = Fuzzer(daemon.bus.address, daemon.stderr)
    yield fuzzer
    fuzzer.close()


def test_random_messages_never_crash_randomd_nor_leak_internals(daemon, fuzzer):
    # No shrinking: once randomd is hurt, every later example fails too; the
    # failure names the message and the ones sent before it instead.
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(messages(), min_size=BATCH, max_size=BATCH))
    def fuzz(batch: list[Message]) -> None:
        fuzzer.send(batch)
        assert daemon.process.poll() is None, fuzzer.recent()

    fuzz()
    print(f"{fuzzer.sent} messages, {fuzzer.replies} replies, errors: {fuzzer.errors}")
    assert fuzzer.sent >= MESSAGES_PER_LIBRARY
    assert daemon.process.poll() is None
    assert 0 <= int(fuzzer.quick(64)) < 2**64
    assert "Traceback" not in daemon.stderr(), daemon.stderr()
