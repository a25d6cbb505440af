"""Under journald, randomd logs structured fields, and never a generated number.

A real systemd-journald runs in a private mount namespace with a /run of its
own (with_journald.sh: the host need not have /run/systemd or /run/log);
randomd finds its stderr declared a journal stream, as systemd declares it.
"""

from __future__ import annotations

import asyncio
import json
import shutil

import harness
import pytest
from clients import SignalRecorder, call

from randomd import dbus

JOURNALD = "/lib/systemd/systemd-journald"


async def use_randomd(address: str) -> tuple[list[str], str]:
    """Quick, Bytes and a Slow job; the numbers they produced, and the job's path."""
    client = await dbus.connect(address)
    numbers = [(await call(client, "Quick", "u", [128]))[0] for _ in range(3)]
    numbers.append((await call(client, "Bytes", "u", [16]))[0].hex())
    recorder = SignalRecorder(client)
    (path,) = await call(client, "Slow", "u", [64])
    numbers.append((await recorder.wait_for(lambda m: m.member == "Finished")).body[1])
    client.disconnect()
    return numbers, path


@pytest.fixture(scope="module")
def journal(library, tmp_path_factory):
    """The journal of one randomd run that served Quick, Bytes and Slow, and its numbers."""
    assert shutil.which("unshare") and harness.Path(JOURNALD).exists(), \
        "needs unshare (util-linux) and systemd-journald (systemd)"
    export = tmp_path_factory.mktemp("journal") / "export.json"
    bus = harness.SystemBus()
    daemon = harness.Randomd(bus, library, 'SlowBitInterval = 0\nLogLevel = "debug"\n',
                             wrapper=["unshare", "-m", "--propagation", "private",
                                      str(harness.REPO / "tests/integration/with_journald.sh"),
                                      str(export)])
    try:
        daemon.wait_ready()
        numbers, path = asyncio.run(use_randomd(bus.address))
        assert daemon.terminate() == 0, daemon.stderr()
        entries = [json.loads(line) for line in export.read_text().splitlines()]
        yield [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "randomd"], numbers, path
    finally:
        daemon.stop()
        bus.stop()


def test_messages_go_to_the_journal_not_stderr(journal):
    entries, _, _ = journal
    assert any("serving org.randomd.Random1" in e["MESSAGE"] for e in entries)


def test_a_job_is_logged_with_its_structured_fields(journal):
    entries, _, path = journal
    job = path.rsplit("/", 1)[1]
    started = [e for e in entries if e.get("RANDOMD_JOB") == job]
    assert started, entries
    assert started[0]["RANDOMD_UID"] == "0" and started[0]["RANDOMD_SENDER"].startswith(":")


def test_priorities_follow_the_log_levels(journal):
    entries, _, _ = journal
    assert {"6", "7"} <= {e["PRIORITY"] for e in entries}  # info and debug


def test_no_generated_number_reaches_the_journal(journal):
    entries, numbers, _ = journal
    text = json.dumps(entries)
    assert all(number not in text for number in numbers)
