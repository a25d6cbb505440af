"""randomctl, the real command, as a subprocess against randomd on the system-like bus.

Each daemon-backed test runs on both bus libraries (randomd's and
randomctl's alike), as root and as the unprivileged user randomd-test.  The
bus of this module also runs a real polkitd (tests/polkit_harness.py) with
the project's actions file and no rules.  With no logind session every
subject is judged by the allow_any defaults: org.randomd.Random1.slow is
granted, configure and manage-jobs need an administrator's password, which
no one here can give (there is no authentication agent).  So randomd-test
can start jobs and is refused the administrative actions: a call that
allows no prompt gets InteractiveAuthorizationRequired, an interactive one
AccessDenied.  Root is never checked.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import selectors
import shutil
import signal
import subprocess
import time
from typing import Iterator, Sequence

import pytest

import harness
from polkit_harness import Polkitd, policy_bus
from randomd import __version__, api

USER = harness.TEST_USER
STATUS = {"ok": 0, "failure": 1, "usage": 2, "not_authorized": 4, "unavailable": 69,
          "interrupted": 130}
INTERVAL = 0.02  # SlowBitInterval of this module's randomd
MAN_PAGES = ("randomctl.1", "randomd.8", "randomd.conf.5")
COMMANDS = ("quick", "bytes", "slow", "jobs", "show", "wait", "cancel", "cancel-all", "status",
            "monitor", "set-interval")


# -- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="module")
def system_bus(users):
    """This module's bus: the shipped policy and a real polkitd with the shipped actions.

    No test here authenticates, so nothing is remembered from one test to
    the next and one polkitd serves the whole module.
    """
    bus = policy_bus()
    polkitd = Polkitd(bus)
    try:
        polkitd.start()
        yield bus
    finally:
        polkitd.close()
        bus.stop()


@pytest.fixture(scope="module")
def randomd(system_bus, library):
    """One quick randomd for the tests that leave its settings alone."""
    daemon = harness.Randomd(system_bus, library, f"SlowBitInterval = {INTERVAL}\n").wait_ready()
    yield daemon
    daemon.stop()


class Ctl:
    """Runs randomctl against one bus, on one bus library."""

    def __init__(self, address: str, library: str) -> None:
        self.address = address
        self.library = library

    def argv(self, args: Sequence[str], user: str | None = None) -> list[str]:
        return harness.as_user(user, [harness.PYTHON, "-m", "randomd.ctl",
                                      "--address", self.address, *args])

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "PYTHONPATH": str(harness.REPO),
                "RANDOMD_BUS_LIBRARY": self.library, "LC_ALL": "C.UTF-8"}

    def __call__(self, *args: str, user: str | None = None, binary: bool = False,
                 timeout: float = harness.TIMEOUT) -> subprocess.CompletedProcess:
        """Run randomctl to its end, with stdin not a terminal."""
        result = subprocess.run(self.argv(args, user), env=self.env(), cwd="/",
                                stdin=subprocess.DEVNULL, capture_output=True, text=not binary,
                                timeout=timeout)
        return result

    def start(self, *args: str, user: str | None = None, **kwargs) -> subprocess.Popen:
        """Start randomctl in the background, with pipes unless told otherwise."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        return subprocess.Popen(self.argv(args, user), env=self.env(), cwd="/",
                                stdin=kwargs.pop("stdin", subprocess.DEVNULL), **kwargs)


@pytest.fixture
def ctl(system_bus, library, randomd) -> Ctl:
    return Ctl(system_bus.address, library)


@pytest.fixture
def fresh_ctl(library, start_randomd):
    """A Ctl for a randomd of the test's own (on a bus of its own), with a config text."""
    def start(config: str = "") -> tuple[Ctl, harness.Randomd]:
        daemon = start_randomd(config).wait_ready()
        return Ctl(daemon.bus.address, library), daemon
    return start


@pytest.fixture
def background(system_bus) -> Iterator[list[subprocess.Popen]]:
    """randomctl processes a test started; killed if still running at its end.

    A job outlives the randomctl that started it, so the jobs they leave on
    this module's randomd are cancelled too, lest the next test find them.
    """
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(harness.TIMEOUT)
    # No check: the module's randomd may not have been started.
    harness.busctl(system_bus, "call", api.BUS_NAME, api.MANAGER_PATH, api.MANAGER_INTERFACE,
                   "CancelAll")


# -- helpers -------------------------------------------------------------------

def one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """The stderr of a failed run: one 'randomctl: ' line naming *words*, no traceback."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("randomctl: "), result.stderr
    for word in words:
        assert word in lines[0], result.stderr
    return lines[0]


def managed_jobs(bus: harness.SystemBus) -> dict[str, dict[str, object]]:
    """Every job randomd exports, from busctl: path -> {property: value}."""
    result = harness.busctl(bus, "--json=short", "call", api.BUS_NAME, api.MANAGER_PATH,
                            "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
                            check=True)
    objects = json.loads(result.stdout)["data"][0]
    return {path: {name: value["data"] for name, value in interfaces[api.JOB_INTERFACE].items()}
            for path, interfaces in objects.items()}


def running_job(bus: harness.SystemBus, owner_uid: int = 0) -> str:
    """The path of the one running job of *owner_uid*, once it exists."""
    def find() -> str | None:
        paths = [path for path, props in managed_jobs(bus).items()
                 if props["State"] == "running" and props["OwnerUID"] == owner_uid]
        return paths[0] if paths else None
    return harness.wait_for(find, what="a running job")


def job_state(bus: harness.SystemBus, path: str) -> str:
    result = harness.busctl(bus, "get-property", api.BUS_NAME, path, api.JOB_INTERFACE,
                            "State", check=True)
    return result.stdout.split()[1].strip('"')


def read_until(fd: int, pattern: str, timeout: float = harness.TIMEOUT) -> str:
    """Read *fd* until its text matches *pattern* (a regex); return all of it."""
    text = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not re.search(pattern, text.decode(errors="replace")):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"no {pattern!r} in {timeout} s; read {text!r}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # a pty whose other side is closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"end of output before {pattern!r}; read {text!r}")
            text += chunk
    return text.decode(errors="replace")


def on_terminal(ctl: Ctl, *args: str, user: str | None = None,
                background: list | None = None) -> tuple[int, str]:
    """Run randomctl with stdin, stdout and stderr on a pseudo-terminal; its status and text."""
    master, slave = pty.openpty()
    try:
        process = ctl.start(*args, user=user, stdin=slave, stdout=slave, stderr=slave)
        if background is not None:
            background.append(process)
    finally:
        os.close(slave)
    try:
        text = read_to_end(master)
    finally:
        os.close(master)
    return process.wait(harness.TIMEOUT), text.replace("\r\n", "\n")


def read_to_end(fd: int, timeout: float = harness.TIMEOUT) -> str:
    """Everything from *fd* until its writers are gone."""
    text = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"output did not end in {timeout} s; read {text!r}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: a pty whose other side is closed
                chunk = b""
            if not chunk:
                return text.decode(errors="replace")
            text += chunk


def user_uid() -> int:
    return harness.ensure_user(USER).pw_uid


# -- quick and bytes -----------------------------------------------------------

def test_quick_prints_a_number_of_the_given_bits(ctl):
    result = ctl("quick", "8")
    assert result.returncode == STATUS["ok"], result.stderr
    assert 0 <= int(result.stdout) < 2**8
    assert result.stderr == ""


def test_quick_defaults_to_16_bits_for_an_unprivileged_user(ctl):
    result = ctl("quick", user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    assert 0 <= int(result.stdout) < 2**16


def test_quick_json_is_one_object(ctl):
    result = ctl("--json", "quick", "100")
    assert result.returncode == STATUS["ok"], result.stderr
    data = json.loads(result.stdout)
    assert data["bits"] == 100 and 0 <= int(data["number"]) < 2**100


def test_global_options_may_follow_the_command(ctl):
    result = ctl("quick", "8", "--json")
    assert result.returncode == STATUS["ok"], result.stderr
    assert json.loads(result.stdout)["bits"] == 8


def test_argument_refused_by_randomd_fails_with_its_sentence(ctl):
    result = ctl("quick", "0")
    assert result.returncode == STATUS["failure"]
    one_line_error(result, "bits must be between 1 and", "MaxQuickBits")
    assert result.stdout == ""


def test_json_error_goes_to_stdout(ctl):
    result = ctl("--json", "quick", "0")
    assert result.returncode == STATUS["failure"]
    error = json.loads(result.stdout)["error"]
    assert error["dbus_error"] == api.ERROR_PREFIX + "InvalidArgument"
    assert error["exit_status"] == STATUS["failure"] and "MaxQuickBits" in error["message"]


def test_bytes_prints_hex_by_default(ctl):
    result = ctl("bytes", "16")
    assert result.returncode == STATUS["ok"], result.stderr
    assert re.fullmatch(r"[0-9a-f]{32}\n", result.stdout)


def test_bytes_base64(ctl):
    result = ctl("bytes", "16", "--base64")
    assert result.returncode == STATUS["ok"], result.stderr
    assert len(base64.b64decode(result.stdout.strip(), validate=True)) == 16


def test_bytes_raw_writes_the_bytes_themselves(ctl):
    result = ctl("bytes", "300", "--raw", binary=True)
    assert result.returncode == STATUS["ok"], result.stderr
    assert len(result.stdout) == 300


def test_bytes_json(ctl):
    result = ctl("--json", "bytes", "8", user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    data = json.loads(result.stdout)
    assert data["count"] == 8 and data["encoding"] == "hex" and len(bytes.fromhex(data["data"])) == 8


# -- slow ----------------------------------------------------------------------

def test_slow_prints_only_the_number_when_piped(ctl):
    result = ctl("slow", "8")
    assert result.returncode == STATUS["ok"], result.stderr
    assert 0 <= int(result.stdout) < 2**8
    assert result.stderr == ""  # no progress bar off a terminal


def test_slow_as_unprivileged_user(ctl):
    result = ctl("slow", "8", user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    assert 0 <= int(result.stdout) < 2**8


def test_slow_json_names_the_job(ctl, system_bus):
    data = json.loads(ctl("--json", "slow", "4").stdout)
    assert data["state"] == "completed" and 0 <= int(data["number"]) < 16
    assert data["path"] == api.job_path(int(data["job"]))
    assert managed_jobs(system_bus)[data["path"]]["State"] == "completed"


def test_slow_no_wait_prints_the_job_id_and_another_randomctl_waits_for_its_number(
        ctl, system_bus):
    """The job outlives the randomctl that started it (about 1 s of bits)."""
    started = ctl("slow", "--no-wait", "50", user=USER)
    assert started.returncode == STATUS["ok"], started.stderr
    assert re.fullmatch(r"[1-9][0-9]*\n", started.stdout), started.stdout
    job = started.stdout.strip()
    assert job_state(system_bus, api.job_path(int(job))) == "running"
    waited = ctl("wait", job, user=USER)
    assert waited.returncode == STATUS["ok"], waited.stderr
    assert 0 <= int(waited.stdout) < 2**50
    assert job_state(system_bus, api.job_path(int(job))) == "completed"


def test_slow_no_wait_json_names_the_job_and_its_path(ctl):
    result = ctl("--json", "slow", "--no-wait", "4")
    assert result.returncode == STATUS["ok"], result.stderr
    data = json.loads(result.stdout)
    assert data["path"] == api.job_path(int(data["job"])) and data["bits"] == 4
    assert "number" not in data


def test_slow_draws_a_progress_bar_on_a_terminal(fresh_ctl, background):
    ctl, _daemon = fresh_ctl("SlowBitInterval = 0.05\n")
    status, text = on_terminal(ctl, "slow", "8", background=background)
    assert status == STATUS["ok"], text
    assert re.search(r"\r\[#*-+\] +[0-7]/8 bits +\d+%  [\d.]+s elapsed  ETA ", text), text
    assert re.search(r"\r\[#{8,}\] 8/8 bits  100%  [\d.]+s elapsed.*\n(\d+)\n$", text), text
    assert 0 <= int(text.splitlines()[-1]) < 2**8


def test_ctrl_c_cancels_the_job_and_exits_130(ctl, system_bus, background):
    process = ctl.start("slow", "200")
    background.append(process)
    path = running_job(system_bus)
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=harness.TIMEOUT)
    assert process.returncode == STATUS["interrupted"], stderr
    assert "cancelled" in stderr and "Traceback" not in stderr
    assert job_state(system_bus, path) == "cancelled"


def test_slow_reports_a_job_cancelled_by_someone_else(ctl, system_bus, background):
    process = ctl.start("slow", "200", user=USER)
    background.append(process)
    path = running_job(system_bus, user_uid())
    assert ctl("cancel", path.rsplit("/", 1)[1]).returncode == STATUS["ok"]
    _stdout, stderr = process.communicate(timeout=harness.TIMEOUT)
    assert process.returncode == STATUS["failure"]
    assert stderr.strip() == f"randomctl: Job {path.rsplit('/', 1)[1]} was cancelled."


def test_slow_over_the_quota_fails(fresh_ctl, background):
    ctl, daemon = fresh_ctl("MaxJobsPerUser = 1\nSlowBitInterval = 0.05\n")
    background.append(ctl.start("slow", "200"))
    running_job(daemon.bus)
    result = ctl("slow", "1")
    assert result.returncode == STATUS["failure"]
    one_line_error(result, "MaxJobsPerUser")


def test_slow_fails_when_randomd_shuts_down(fresh_ctl, background):
    ctl, daemon = fresh_ctl("SlowBitInterval = 0.05\n")
    process = ctl.start("--json", "slow", "200")
    background.append(process)
    running_job(daemon.bus)
    assert daemon.terminate() == 0
    stdout, stderr = process.communicate(timeout=harness.TIMEOUT)
    assert process.returncode == STATUS["failure"], stderr
    assert json.loads(stdout)["error"]["dbus_error"] == api.ERROR_PREFIX + "ShuttingDown"


def test_interactive_authorization_is_allowed_on_a_terminal(ctl, background):
    """The flag is seen in polkitd's answer: allowed to prompt, with no agent to
    prompt through, it refuses (AccessDenied) rather than asking for interaction."""
    status, text = on_terminal(ctl, "set-interval", "1", user=USER, background=background)
    assert status == STATUS["not_authorized"], text
    assert text.strip().startswith(f"randomctl: Not authorized for {api.ACTION_CONFIGURE}"), text
    assert "Authentication is required" not in text  # not the non-interactive refusal


def test_no_ask_password_clears_the_interactive_flag(ctl, background):
    """Without the flag polkitd's challenge comes back as InteractiveAuthorizationRequired."""
    status, text = on_terminal(ctl, "--no-ask-password", "set-interval", "1", user=USER,
                               background=background)
    assert status == STATUS["not_authorized"], text
    assert text.strip().startswith(
        f"randomctl: Authentication is required for {api.ACTION_CONFIGURE}; "
        "run randomctl from a terminal without --no-ask-password"), text


# -- jobs, show, wait, cancel --------------------------------------------------

def test_jobs_lists_a_finished_job_in_a_table(ctl):
    job = json.loads(ctl("--json", "slow", "4").stdout)["job"]
    result = ctl("jobs", user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "PROGRESS", "BITS", "UID", "AGE"]
    row = next(row.split() for row in rows if row.split()[:1] == [job])
    assert row[1:5] == ["completed", "100%", "4/4", "0"]


def test_jobs_json_lists_job_properties(ctl):
    job = json.loads(ctl("--json", "slow", "4").stdout)["job"]
    jobs = {entry["id"]: entry for entry in json.loads(ctl("--json", "jobs").stdout)}
    assert jobs[job]["state"] == "completed" and jobs[job]["bits_done"] == 4
    assert "number" not in jobs[job]


def test_show_prints_properties_by_id(ctl):
    job = json.loads(ctl("--json", "slow", "4").stdout)["job"]
    result = ctl("show", job, user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    props = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert props["Id"] == job and props["State"] == "completed" and props["Bits"] == "4"
    assert props["Path"] == api.job_path(int(job))
    assert props["OwnerConnected"] == "no"  # the randomctl that started it has left


def test_show_accepts_a_job_path(ctl):
    path = json.loads(ctl("--json", "slow", "4").stdout)["path"]
    data = json.loads(ctl("--json", "show", path).stdout)
    assert data["path"] == path and data["bits"] == 4 and data["owner_connected"] is False


def test_unknown_job_fails(ctl):
    result = ctl("show", "999999")
    assert result.returncode == STATUS["failure"]
    one_line_error(result, "999999")


def test_wait_prints_the_number_of_a_running_job(ctl, system_bus, background):
    slow = ctl.start("slow", "50")
    background.append(slow)
    path = running_job(system_bus)
    result = ctl("wait", path.rsplit("/", 1)[1])
    assert result.returncode == STATUS["ok"], result.stderr
    stdout, _stderr = slow.communicate(timeout=harness.TIMEOUT)
    assert result.stdout == stdout


def test_wait_for_another_users_job_is_not_authorized(ctl):
    job = json.loads(ctl("--json", "slow", "2").stdout)["job"]
    result = ctl("wait", job, user=USER)
    assert result.returncode == STATUS["not_authorized"]
    one_line_error(result, "Authentication is required", api.ACTION_MANAGE_JOBS, "as root")


def test_cancel_of_another_users_job_is_not_authorized(ctl, system_bus, background):
    background.append(ctl.start("slow", "200"))
    path = running_job(system_bus)
    result = ctl("cancel", path, user=USER)
    assert result.returncode == STATUS["not_authorized"]
    one_line_error(result, "Authentication is required", api.ACTION_MANAGE_JOBS, "as root")
    assert job_state(system_bus, path) == "running"


def test_cancel_own_job_as_unprivileged_user(ctl, system_bus, background):
    background.append(ctl.start("slow", "200", user=USER))
    path = running_job(system_bus, user_uid())
    result = ctl("--json", "cancel", path, user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    assert json.loads(result.stdout) == [{"job": path.rsplit("/", 1)[1], "path": path,
                                          "cancelled": True}]
    harness.wait_for(lambda: job_state(system_bus, path) == "cancelled", what="cancelled")


def test_cancel_all_cancels_every_running_job(ctl, system_bus, background):
    background.append(ctl.start("slow", "200", user=USER))
    path = running_job(system_bus, user_uid())
    result = ctl("cancel-all")
    assert result.returncode == STATUS["ok"], result.stderr
    harness.wait_for(lambda: job_state(system_bus, path) == "cancelled", what="cancelled")


def test_cancel_all_as_unprivileged_user_is_not_authorized(ctl, system_bus, background):
    background.append(ctl.start("slow", "200"))
    path = running_job(system_bus)
    result = ctl("cancel-all", user=USER)
    assert result.returncode == STATUS["not_authorized"]
    one_line_error(result, "Authentication is required", api.ACTION_MANAGE_JOBS, "as root")
    assert job_state(system_bus, path) == "running"


# -- status, monitor, set-interval ---------------------------------------------

def test_status_shows_version_interval_and_limits(ctl):
    result = ctl("status", user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    assert f"randomd {__version__} is running" in result.stdout
    assert f"{INTERVAL:g} s per bit" in result.stdout and "per user" in result.stdout


def test_status_json(ctl):
    data = json.loads(ctl("--json", "status").stdout)
    assert data["version"] == __version__ and data["slow_bit_interval"] == INTERVAL
    assert data["max_quick_bits"] > 0 and data["unique_name"].startswith(":")
    assert isinstance(data["jobs"], list)


def test_monitor_streams_job_events_without_numbers(ctl, background):
    monitor = ctl.start("--json", "monitor", user=USER)
    background.append(monitor)
    read_until(monitor.stderr.fileno(), "Ctrl-C")
    # 0.4 s: progress is announced at most every 0.1 s, the last step with the end.
    job = json.loads(ctl("--json", "slow", "20").stdout)["job"]
    text = read_until(monitor.stdout.fileno(), rf'"finished", "job": "{job}".*\n')
    monitor.send_signal(signal.SIGINT)
    assert monitor.wait(harness.TIMEOUT) == STATUS["ok"]
    events = [json.loads(line) for line in text.splitlines()]
    mine = [event["event"] for event in events if event.get("job") == job]
    assert mine[0] == "created" and mine[-1] == "finished" and "progress" in mine
    assert not any("number" in event for event in events)


def test_monitor_prints_events_as_text(ctl, background):
    monitor = ctl.start("monitor")
    background.append(monitor)
    read_until(monitor.stderr.fileno(), "Ctrl-C")
    job = json.loads(ctl("--json", "slow", "4").stdout)["job"]
    text = read_until(monitor.stdout.fileno(), rf"job {job} completed\n")
    assert re.search(rf"^\d\d:\d\d:\d\d\.\d{{3}} job {job} created: 4 bits for uid 0", text,
                     re.MULTILINE), text
    monitor.send_signal(signal.SIGINT)
    assert monitor.wait(harness.TIMEOUT) == STATUS["ok"]


def test_set_interval_changes_slow_bit_interval(fresh_ctl):
    ctl, _daemon = fresh_ctl()
    assert ctl("set-interval", "0.125").returncode == STATUS["ok"]
    assert json.loads(ctl("--json", "status").stdout)["slow_bit_interval"] == 0.125


def test_set_interval_as_unprivileged_user_is_not_authorized(ctl):
    result = ctl("set-interval", "1", user=USER)
    assert result.returncode == STATUS["not_authorized"]
    one_line_error(result, "Authentication is required", api.ACTION_CONFIGURE, "as root")
    assert json.loads(ctl("--json", "status").stdout)["slow_bit_interval"] == INTERVAL


def test_set_interval_out_of_range_fails(ctl):
    result = ctl("set-interval", "61")
    assert result.returncode == STATUS["failure"]
    one_line_error(result, "SlowBitInterval")


# -- unavailable, timeouts -----------------------------------------------------

def test_randomd_not_running_exits_69(users, library):
    bus = harness.SystemBus()
    try:
        result = Ctl(bus.address, library)("status")
    finally:
        bus.stop()
    assert result.returncode == STATUS["unavailable"]
    one_line_error(result, "not running")


def test_no_bus_exits_69(tmp_path, library):
    result = Ctl(f"unix:path={tmp_path}/no-such-socket", library)("--json", "quick")
    assert result.returncode == STATUS["unavailable"]
    one_line_error(result, "Cannot connect")
    assert json.loads(result.stdout)["error"]["exit_status"] == STATUS["unavailable"]


def test_timeout_when_randomd_does_not_answer(fresh_ctl):
    ctl, daemon = fresh_ctl()
    daemon.process.send_signal(signal.SIGSTOP)
    try:
        result = ctl("--timeout", "0.3", "quick")
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    assert result.returncode == STATUS["failure"]
    one_line_error(result, "did not answer", "0.3 s")


# -- the command line, help, man pages, completion -----------------------------

def offline(args: Sequence[str]) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(harness.REPO), "LC_ALL": "C.UTF-8",
           "COLUMNS": "80"}
    return subprocess.run([harness.PYTHON, "-m", "randomd.ctl", *args], env=env, cwd="/",
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=harness.TIMEOUT)


def test_usage_error_exits_2_with_one_line():
    result = offline(["quick", "many"])
    assert result.returncode == STATUS["usage"]
    one_line_error(result, "BITS", "randomctl quick --help")


def test_invalid_job_argument_is_a_usage_error():
    result = offline(["--json", "show", "/org/example/7"])
    assert result.returncode == STATUS["usage"]
    assert json.loads(result.stdout)["error"]["exit_status"] == STATUS["usage"]


def test_help_lists_every_command_and_the_exit_statuses():
    result = offline(["--help"])
    assert result.returncode == 0 and result.stderr == ""
    for command in COMMANDS:
        assert re.search(rf"^ +{command} ", result.stdout, re.MULTILINE), command
    for status in STATUS.values():
        assert re.search(rf"^ +{status} ", result.stdout, re.MULTILINE), status


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command):
    result = offline([command, "--help"])
    assert result.returncode == 0 and result.stderr == ""
    assert f"usage: randomctl {command}" in result.stdout
    assert re.search(rf"^examples:\n  randomctl .*{command}", result.stdout, re.MULTILINE)


def test_version():
    result = offline(["--version"])
    assert result.stdout == f"randomctl {__version__}\n"


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_renders_without_warnings(page):
    path = str(harness.REPO / "man" / page)
    env = {**os.environ, "MANWIDTH": "80"}
    for argv in (["man", "--warnings", "-l", path], ["man", "-l", path],
                 ["groff", "-man", "-ww", "-z", path]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env,
                                timeout=harness.TIMEOUT)
        assert result.returncode == 0 and result.stderr == "", (argv, result.stderr)
    assert result.stdout == ""  # groff -z
    assert page.split(".")[0].upper() in subprocess.run(
        ["man", "-l", path], capture_output=True, text=True, env=env).stdout


def complete(words: str) -> list[str]:
    """What the bash completion offers after *words* (the last one being completed)."""
    script = (f"source {harness.REPO}/completion/randomctl.bash\n"
              f"COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n"
              'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}\n'
              '_randomctl randomctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                            timeout=harness.TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completion_offers_commands_and_options():
    assert set(complete("randomctl ''")) >= set(COMMANDS)
    assert complete("randomctl set-") == ["set-interval"]
    assert set(complete("randomctl bytes 16 --")) >= {"--hex", "--base64", "--raw", "--json"}
