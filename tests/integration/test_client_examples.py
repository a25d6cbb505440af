"""The programs in examples/, run as randomd-test against randomd on the policy bus."""

from __future__ import annotations

import os
import re
import subprocess

import harness
import pytest

# The bus of every test here runs a real polkitd (conftest: polkit_bus, polkitd).
pytestmark = pytest.mark.usefixtures("polkitd")

EXAMPLES = harness.REPO / "examples"
INTERVAL = 0.1




@pytest.fixture(scope="module")
def randomd(polkit_bus, library):
    daemon = harness.Randomd(polkit_bus, library, f"SlowBitInterval = {INTERVAL}\n").wait_ready()
    yield daemon
    daemon.stop()


@pytest.fixture
def example(polkit_bus, library, randomd):
    """Run examples/NAME as randomd-test, with this bus as its system bus; its stdout."""
    def run(name: str) -> str:
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(harness.REPO), "LC_ALL": "C.UTF-8",
               "DBUS_SYSTEM_BUS_ADDRESS": polkit_bus.address, "RANDOMD_BUS_LIBRARY": library}
        result = subprocess.run(harness.as_user(harness.TEST_USER,
                                                [harness.PYTHON, str(EXAMPLES / name)]),
                                env=env, cwd="/", capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        return result.stdout
    return run


def test_blocking_example_prints_a_number_bytes_and_a_slow_job(example):
    out = example("blocking.py")
    assert re.search(r"^quick: \d+$", out, re.M) and re.search(r"^bytes: [0-9a-f]{16}$", out, re.M)
    assert re.search(r"^  8/8 bits$", out, re.M)
    assert 0 <= int(re.search(r"^slow: (\d+)$", out, re.M).group(1)) < 256


def test_asyncio_example_cancels_the_long_jobs(example):
    lines = example("asyncio_cancel.py").splitlines()
    states = [line.split()[2] for line in lines]
    assert states == ["completed", "cancelled"] * 5, lines
    assert all(0 <= int(line.split()[3]) < 16 for line in lines[::2])


def test_async_result_example_expires_the_slow_job(example):
    out = example("async_result.py")
    assert re.search(r"^quick job: completed \d+$", out, re.M), out
    assert re.search(r"^slow job: expired \(set_expiry cancelled it\)$", out, re.M), out
