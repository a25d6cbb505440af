"""The README's commands work from a checkout only root can read, and fail fast.

A newcomer clones into /root (mode 0700), where the randomd user cannot read
the code.  These tests copy the checkout into such a directory and run the
demo, and pytest, from there; and show that a daemon that cannot start stops
the suite at once with its own error, instead of timing out test after test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import harness
import pytest

BROKEN_IMPORT = "import randomd_broken_on_purpose\n"
FAIL_FAST_BOUND = 60.0  # seconds: the "within a minute"


@pytest.fixture
def private_checkout() -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of this checkout in a mode 0700 directory, and an environment for running there.

    Its TMPDIR is a directory of its own, removed afterwards with the copy,
    so that nothing the commands run there leave behind stays in /tmp.
    """
    base = harness.public_tempdir("randomd-checkout-")
    private = base / "root"
    private.mkdir(mode=0o700)
    checkout = private / "randomd"
    shutil.copytree(harness.CHECKOUT, checkout, ignore=shutil.ignore_patterns(*harness.NOT_COPIED))
    tmp = base / "tmp"
    tmp.mkdir(mode=0o755)
    env = {**os.environ, "TMPDIR": str(tmp)}
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("PYTEST_ADDOPTS", None)
    unreadable = subprocess.run(harness.as_user(harness.DAEMON_USER,
                                                ["test", "-r", str(checkout / "randomd")]))
    assert unreadable.returncode != 0, "the randomd user can read the copy: the test tests nothing"
    try:
        yield checkout, env
    finally:
        harness.remove_tempdir(base)


def run_bounded(argv: list[str], cwd: Path, env: dict[str, str],
                timeout: float) -> tuple[int, str, float]:
    """Run *argv*; its exit status, output and duration.

    Past *timeout* all it started is killed.
    """
    start = time.monotonic()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(
            f"{argv} did not finish within {timeout} s; its output:\n{output}") from None
    return process.returncode, output, time.monotonic() - start


def pytest_argv(checkout: Path, *args: str) -> list[str]:
    return [harness.PYTHON, "-m", "pytest", "-p", "no:cacheprovider",
            f"--basetemp={checkout.parent.parent / 'tmp' / 'basetemp'}", *args]


def test_the_demo_runs_from_a_checkout_only_root_can_read(private_checkout):
    checkout, env = private_checkout
    status, output, _ = run_bounded([str(checkout / "packaging/demo")], checkout, env, 120)
    assert status == 0, output
    assert re.search(r'^s "\d+"$', output, re.MULTILINE), output  # busctl's Quick
    assert "from a copy of randomd/ and conf/" in output


def test_the_tests_run_the_daemon_from_a_checkout_only_root_can_read(private_checkout):
    checkout, env = private_checkout
    status, output, _ = run_bounded(
        pytest_argv(checkout, "tests/integration/test_introspection.py", "-k", "dbus_fast"),
        checkout, env, 120)
    assert status == 0, output
    assert "from a world-readable copy of this checkout" in output
    assert re.search(r"\b\d+ passed\b", output), output


def test_a_daemon_that_cannot_start_stops_the_suite_at_once_with_its_error(private_checkout):
    checkout, env = private_checkout
    main = checkout / "randomd/__main__.py"
    main.write_text(BROKEN_IMPORT + main.read_text())  # randomd's, not pytest's, import
    status, output, seconds = run_bounded(pytest_argv(checkout, "tests/integration"),
                                          checkout, env, FAIL_FAST_BOUND)
    assert status == pytest.ExitCode.TESTS_FAILED, output
    assert seconds < FAIL_FAST_BOUND
    last_lines = "\n".join(output.splitlines()[-12:])
    assert "No module named 'randomd_broken_on_purpose'" in last_lines, output
    assert "No integration test was run" in last_lines, output
    assert not re.search(r"\b\d+ (passed|failed)\b", output), output
