"""Secrets: a generated number reaches the caller who asked for it, and no one else.

randomd runs at LogLevel debug next to a real polkitd.  Root makes numbers
with Quick, Bytes and Slow (completed, waited for, cancelled); then the tests
look for every one of them, in decimal and in hex (bytes also as a Python
repr, base64 and a list of integers), in randomd's log, in everything a
bystander of another uid received while listening to all signals (and
trying to eavesdrop), in every property of every job, and in what another
uid is told when it asks for someone else's result.

And the numbers come from the OS CSPRNG: the module is checked, and 10**6
bits from Bytes pass a chi-square test of the byte histogram and a monobit
test.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import collections
import json
import math
import os
import random
import secrets
import subprocess
from pathlib import Path

import harness
import pytest
from clients import SignalRecorder, call, set_property
from polkit_harness import ACCESS_DENIED, INTERACTIVE_REQUIRED, UserClient

from randomd import api, dbus, randomness

CONFIG = "SlowBitInterval = 0.002\nLogLevel = \"debug\"\nMaxBytes = 65536\n"
JOBS = 12
# p = 0.001: chi-square with 255 degrees of freedom, and |z| of a normal.
CHI_SQUARE_CRITICAL_255 = 330.52
Z_CRITICAL = 3.2905
SAMPLE_BITS = 10**6
LISTENER = harness.REPO / "tests/integration/peers/signal_listener.py"


def spellings(number: int | bytes) -> list[str]:
    """Every way a number could appear in text."""
    if isinstance(number, (bytes, bytearray)):
        data = bytes(number)
        return [data.hex(), data[:16].hex(), repr(data)[2:34],
                base64.b64encode(data).decode()[:24],
                ", ".join(str(b) for b in data[:12]), " ".join(str(b) for b in data[:12])]
    return [str(number), f"{number:x}", f"{number:X}"]


class Made:
    """The numbers root made, and the jobs that made them."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.data: list[bytes] = []
        self.jobs: list[str] = []

    def spellings(self) -> list[str]:
        return [s for n in [*self.numbers, *self.data] for s in spellings(n)]

    def assert_absent_from(self, text: str, where: str) -> None:
        leaked = [s for s in self.spellings() if s in text]
        assert not leaked, f"{where} holds generated numbers: {leaked[:5]}"


# -- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(polkit_bus, polkitd, library):
    randomd = harness.Randomd(polkit_bus, library, CONFIG).wait_ready()
    yield randomd
    randomd.stop()


@pytest.fixture(scope="module")
def bystander(daemon):
    """A listener of another uid, started before anything is made (see Listener)."""
    listener = Listener(daemon.bus)
    yield listener
    listener.kill()


@pytest.fixture(scope="module")
def made(daemon, bystander) -> Made:
    """Numbers of every kind, made by root once per module, with the bystander listening."""
    return asyncio.run(make_numbers(daemon))


async def make_numbers(daemon: harness.Randomd) -> Made:
    made = Made()
    owner = await dbus.connect(daemon.bus.address)
    try:
        finished = SignalRecorder(owner)
        for _ in range(4):
            (number,) = await call(owner, "Quick", "u", [128])
            made.numbers.append(int(number))
            (data,) = await call(owner, "Bytes", "u", [64])
            made.data.append(bytes(data))
        paths = [(await call(owner, "Slow", "u", [64]))[0] for _ in range(JOBS)]
        made.jobs = paths
        await call(owner, "Cancel", path=paths[-1], interface=api.JOB_INTERFACE)
        for path in paths[:JOBS // 2]:  # Wait for half, let the others just finish
            (number,) = await call(owner, "Wait", path=path, interface=api.JOB_INTERFACE)
            made.numbers.append(int(number))
        for path in paths[:-1]:
            signal = await finished.wait_for(lambda m, p=path: m.member == "Finished"
                                             and m.path == p)
            assert signal.body[0] == "completed"
            made.numbers.append(int(signal.body[1]))
        # A last broadcast: the bystander stops once it sees it.
        await set_property(owner, "SlowBitInterval", "d", 0.003)
        await set_property(owner, "SlowBitInterval", "d", 0.002)
    finally:
        owner.disconnect()
    assert len(made.numbers) == 4 + JOBS // 2 + JOBS - 1
    return made


class Listener:
    """peers/signal_listener.py run by randomd-test: it records every signal it receives."""

    def __init__(self, bus: harness.SystemBus) -> None:
        argv = harness.as_user(harness.TEST_USER, [harness.PYTHON, str(LISTENER), bus.address])
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(harness.REPO)}
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True,
                                        cwd="/")
        self.rules = json.loads(self.process.stdout.readline())

    def signals(self) -> list[dict]:
        """Everything received until the end marker (the second SlowBitInterval change)."""
        out, _ = self.process.communicate(timeout=30)
        return [json.loads(line) for line in out.splitlines()]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(harness.TIMEOUT)


# -- logs, signals, properties, other uids -------------------------------------


def test_no_generated_number_appears_in_the_debug_log(daemon, made):
    log = daemon.stderr()
    assert "DEBUG" in log and "job 3" in log  # the log is there, and talks about jobs
    made.assert_absent_from(log, "randomd's log")


def test_a_bystander_listening_to_everything_never_receives_a_number(bystander, made):
    """Broad match rules, and an eavesdropping one, for the whole life of the jobs."""
    signals = bystander.signals()
    members = collections.Counter(s["member"] for s in signals)
    assert members["InterfacesAdded"] >= JOBS and members["PropertiesChanged"] > JOBS
    assert members["Finished"] == 0, "a Finished signal reached another uid"
    made.assert_absent_from(json.dumps(signals), "the bystander's signals")


async def test_no_property_holds_a_number(daemon, made):
    client = await dbus.connect(daemon.bus.address)
    try:
        (objects,) = await call(client, "GetManagedObjects",
                                interface="org.freedesktop.DBus.ObjectManager")
        assert set(made.jobs) <= set(objects)
        texts = [repr(objects)]
        for path in made.jobs:
            (values,) = await call(client, "GetAll", "s", [""], path=path,
                                   interface="org.freedesktop.DBus.Properties")
            texts.append(repr({name: v.value for name, v in values.items()}))
        (values,) = await call(client, "GetAll", "s", [api.MANAGER_INTERFACE],
                               interface="org.freedesktop.DBus.Properties")
        texts.append(repr({name: v.value for name, v in values.items()}))
    finally:
        client.disconnect()
    made.assert_absent_from("\n".join(texts), "the properties")


@pytest.mark.parametrize("interactive, refusal", [(False, INTERACTIVE_REQUIRED),
                                                  (True, ACCESS_DENIED)])
async def test_another_uid_cannot_wait_for_a_finished_jobs_number(daemon, made, interactive,
                                                                   refusal):
    other = await UserClient.start(daemon.bus, harness.TEST_USER)
    try:
        replies = [await other.call("Wait", path=path, interface=api.JOB_INTERFACE,
                                    interactive=interactive) for path in made.jobs[:3]]
        properties = await other.call("GetAll", "s", [api.JOB_INTERFACE], path=made.jobs[0],
                                      interface="org.freedesktop.DBus.Properties")
    finally:
        await other.close()
    assert all(reply.error == refusal and not reply.body for reply in replies), replies
    assert properties.error is None and properties.body[0]["State"] == "completed"
    made.assert_absent_from(repr(replies) + repr(properties), "another uid's replies")


async def test_the_owner_uid_gets_its_number_back(daemon, made):
    """The check above refuses for the right reason: the owner's uid is answered."""
    owner = await dbus.connect(daemon.bus.address)
    try:
        (number,) = await call(owner, "Wait", path=made.jobs[0], interface=api.JOB_INTERFACE)
    finally:
        owner.disconnect()
    assert int(number) in made.numbers


# -- the source of randomness --------------------------------------------------


def test_randomness_draws_from_the_os_csprng_only(monkeypatch):
    tree = ast.parse(Path(randomness.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"os", "secrets"}, imported
    assert isinstance(randomness._source, random.SystemRandom)
    assert secrets.SystemRandom is random.SystemRandom
    drawn: list[int] = []
    real_urandom = os.urandom

    def urandom(count: int) -> bytes:
        drawn.append(count)
        return real_urandom(count)

    # SystemRandom reads random._urandom (os.urandom); random_bytes reads os.urandom.
    monkeypatch.setattr(random, "_urandom", urandom)
    monkeypatch.setattr(randomness.os, "urandom", urandom)
    randomness.random_integer(128)
    randomness.random_bytes(16)
    assert len(drawn) == 2


def test_seeding_pythons_random_module_changes_nothing():
    state = random.getstate()
    try:
        random.seed(1234)
        first = [randomness.random_integer(64) for _ in range(4)]
        random.seed(1234)
        second = [randomness.random_integer(64) for _ in range(4)]
        assert first != second
    finally:
        random.setstate(state)


async def sample(daemon: harness.Randomd) -> bytes:
    """10**6 bits from Bytes."""
    client = await dbus.connect(daemon.bus.address)
    try:
        chunks = [(await call(client, "Bytes", "u", [62500]))[0] for _ in range(2)]
    finally:
        client.disconnect()
    data = b"".join(bytes(chunk) for chunk in chunks)
    assert len(data) * 8 == SAMPLE_BITS
    return data


def chi_square_of_bytes(data: bytes) -> float:
    expected = len(data) / 256
    counts = collections.Counter(data)
    return sum((counts.get(value, 0) - expected) ** 2 / expected for value in range(256))


def monobit_z(data: bytes) -> float:
    ones = int.from_bytes(data, "big").bit_count()
    bits = len(data) * 8
    return abs(2 * ones - bits) / math.sqrt(bits)


@pytest.mark.parametrize("statistic, critical", [(chi_square_of_bytes, CHI_SQUARE_CRITICAL_255),
                                                 (monobit_z, Z_CRITICAL)],
                         ids=["chi-square", "monobit"])
async def test_a_million_bits_from_bytes_look_uniform(daemon, statistic, critical):
    """p = 0.001 per sample; a second sample decides if the first fails, so a good
    generator fails one run in a million, and a biased one fails both samples."""
    values = []
    for _ in range(2):
        values.append(statistic(await sample(daemon)))
        if values[-1] < critical:
            return
    raise AssertionError(f"{statistic.__name__} above {critical} twice: {values}")
