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
import fcntl
import json
import os
import pty
import re
import selectors
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import harness
import pytest

from randomd import __version__, api

# The bus of every test here runs a real polkitd (conftest: polkit_bus, polkitd).
pytestmark = pytest.mark.usefixtures("polkitd")

USER = harness.TEST_USER
STATUS = {"ok": 0, "failure": 1, "usage": 2, "not_authorized": 4, "unavailable": 69,
          "interrupted": 130}
INTERVAL = 0.02  # SlowBitInterval of this module's randomd
MAN_PAGES = ("randomctl.1", "randomd.8", "randomd.conf.5")
COMMANDS = ("quick", "bytes", "slow", "jobs", "show", "wait", "cancel", "cancel-all", "status",
            "monitor", "set-interval", "reload")


# -- fixtures ------------------------------------------------------------------



@pytest.fixture(scope="module")
def randomd(polkit_bus, library):
    """One quick randomd for the tests that leave its settings alone."""
    daemon = harness.Randomd(polkit_bus, library, f"SlowBitInterval = {INTERVAL}\n").wait_ready()
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

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "PYTHONPATH": str(harness.REPO),
                "RANDOMD_BUS_LIBRARY": self.library, "LC_ALL": "C.UTF-8", **(extra or {})}

    def __call__(self, *args: str, user: str | None = None, binary: bool = False,
                 timeout: float = harness.TIMEOUT,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run randomctl to its end, with stdin not a terminal."""
        result = subprocess.run(self.argv(args, user), env=self.env(env), cwd="/",
                                stdin=subprocess.DEVNULL, capture_output=True, text=not binary,
                                timeout=timeout)
        return result

    def start(self, *args: str, user: str | None = None, **kwargs) -> subprocess.Popen:
        """Start randomctl in the background, with pipes unless told otherwise."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        env = self.env(kwargs.pop("env", None))
        return subprocess.Popen(self.argv(args, user), env=env, cwd="/",
                                stdin=kwargs.pop("stdin", subprocess.DEVNULL), **kwargs)


@pytest.fixture
def ctl(polkit_bus, library, randomd) -> Ctl:
    return Ctl(polkit_bus.address, library)


@pytest.fixture
def fresh_ctl(library, start_randomd):
    """A Ctl for a randomd of the test's own (on a bus of its own), with a config text."""
    def start(config: str = "") -> tuple[Ctl, harness.Randomd]:
        daemon = start_randomd(config).wait_ready()
        return Ctl(daemon.bus.address, library), daemon
    return start


@pytest.fixture
def background(polkit_bus) -> Iterator[list[subprocess.Popen]]:
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
    harness.busctl(polkit_bus, "call", api.BUS_NAME, api.MANAGER_PATH, api.MANAGER_INTERFACE,
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



def running_job(bus: harness.SystemBus, owner_uid: int = 0) -> str:
    """The path of the one running job of *owner_uid*, once it exists."""
    def find() -> str | None:
        paths = [path for path, props in harness.managed_jobs(bus).items()
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


def on_terminal(ctl: Ctl, *args: str, user: str | None = None, background: list | None = None,
                columns: int = 80, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run randomctl with stdin, stdout and stderr on a pseudo-terminal; its status and text."""
    process, master = start_on_terminal(ctl, *args, user=user, columns=columns, env=env)
    if background is not None:
        background.append(process)
    try:
        text = read_to_end(master)
    finally:
        os.close(master)
    return process.wait(harness.TIMEOUT), text.replace("\r\n", "\n")


def start_on_terminal(ctl: Ctl, *args: str, user: str | None = None, columns: int = 80,
                      env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    """Start randomctl on a pseudo-terminal *columns* wide; the process and the pty's master."""
    master, slave = pty.openpty()
    set_columns(master, columns)
    try:
        # As in a login: a session of its own, with the pty as its controlling
        # terminal (pkttyagent prompts on /dev/tty).
        process = ctl.start(*args, user=user, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=_take_terminal, env=env)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return process, master


def set_columns(fd: int, columns: int) -> None:
    """Resize the terminal of *fd*; the kernel tells its foreground processes (SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


def _take_terminal() -> None:
    """In the child: make stdin (a pty) the controlling terminal of its new session."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


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
    assert result.returncode == STATUS["usage"]
    one_line_error(result, "bits must be between 1 and", "MaxQuickBits")
    assert result.stdout == ""


def test_json_error_goes_to_stdout(ctl):
    result = ctl("--json", "quick", "0")
    assert result.returncode == STATUS["usage"]
    error = json.loads(result.stdout)["error"]
    assert error["dbus_error"] == api.ERROR_PREFIX + "InvalidArgument"
    assert error["exit_status"] == STATUS["usage"] and "MaxQuickBits" in error["message"]


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
    assert data["count"] == 8 and data["encoding"] == "hex"
    assert len(bytes.fromhex(data["data"])) == 8


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


def test_slow_json_names_the_job(ctl, polkit_bus):
    data = json.loads(ctl("--json", "slow", "4").stdout)
    assert data["state"] == "completed" and 0 <= int(data["number"]) < 16
    assert data["path"] == api.job_path(data["id"])
    assert harness.managed_jobs(polkit_bus)[data["path"]]["State"] == "completed"


def test_slow_no_wait_prints_the_job_id_and_another_randomctl_waits_for_its_number(
        ctl, polkit_bus):
    """The job outlives the randomctl that started it (about 1 s of bits)."""
    started = ctl("slow", "--no-wait", "50", user=USER)
    assert started.returncode == STATUS["ok"], started.stderr
    assert re.fullmatch(r"[1-9][0-9]*\n", started.stdout), started.stdout
    job = started.stdout.strip()
    assert job_state(polkit_bus, api.job_path(int(job))) == "running"
    waited = ctl("wait", job, user=USER)
    assert waited.returncode == STATUS["ok"], waited.stderr
    assert 0 <= int(waited.stdout) < 2**50
    assert job_state(polkit_bus, api.job_path(int(job))) == "completed"


def test_slow_no_wait_json_names_the_job_and_its_path(ctl, background):
    # background: the job it leaves running is cancelled at the end.
    result = ctl("--json", "slow", "--no-wait", "4")
    assert result.returncode == STATUS["ok"], result.stderr
    data = json.loads(result.stdout)
    assert data["path"] == api.job_path(data["id"]) and data["bits"] == 4
    assert "number" not in data


def test_slow_draws_a_progress_bar_on_a_terminal(fresh_ctl, background):
    ctl, _daemon = fresh_ctl("SlowBitInterval = 0.05\n")
    status, text = on_terminal(ctl, "slow", "8", background=background)
    assert status == STATUS["ok"], text
    assert re.search(r"\r\[#*-+\] +[0-7]/8 bits +\d+%  [\d.]+s elapsed  ETA ", text), text
    assert re.search(r"\r\[#{8,}\] 8/8 bits  100%  [\d.]+s elapsed.*\n(\d+)\n$", text), text
    assert 0 <= int(text.splitlines()[-1]) < 2**8


def test_ctrl_c_cancels_the_job_and_exits_130(ctl, polkit_bus, background):
    process = ctl.start("slow", "200")
    background.append(process)
    path = running_job(polkit_bus)
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=harness.TIMEOUT)
    assert process.returncode == STATUS["interrupted"], stderr
    assert "cancelled" in stderr and "Traceback" not in stderr
    assert job_state(polkit_bus, path) == "cancelled"


def test_slow_reports_a_job_cancelled_by_someone_else(ctl, polkit_bus, background):
    process = ctl.start("slow", "200", user=USER)
    background.append(process)
    path = running_job(polkit_bus, user_uid())
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
    """The flag is seen in polkitd's answer: allowed to prompt, with no agent for
    the caller's session (there is no logind here), it refuses (AccessDenied)
    rather than asking for interaction."""
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
        "run randomctl on a terminal without --no-ask-password"), text


# -- jobs, show, wait, cancel --------------------------------------------------

def test_jobs_lists_a_finished_job_in_a_table(ctl):
    job = str(json.loads(ctl("--json", "slow", "4").stdout)["id"])
    result = ctl("jobs", user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    header, *rows, _blank, footer = result.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "PROGRESS", "BITS", "UID", "AGE"]
    assert re.fullmatch(r"\d+ jobs? listed\.", footer), result.stdout
    row = next(row.split() for row in rows if row.split()[:1] == [job])
    assert row[1:5] == ["completed", "100%", "4/4", "0"]


def test_jobs_json_lists_job_properties(ctl):
    job = json.loads(ctl("--json", "slow", "4").stdout)["id"]
    jobs = {entry["id"]: entry for entry in json.loads(ctl("--json", "jobs").stdout)}
    assert jobs[job]["state"] == "completed" and jobs[job]["bits_done"] == 4
    assert "number" not in jobs[job]


def test_show_prints_properties_by_id(ctl):
    job = str(json.loads(ctl("--json", "slow", "4").stdout)["id"])
    result = ctl("show", job, user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    props = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert props["Id"] == job and props["State"] == "completed" and props["Bits"] == "4"
    assert props["Path"] == api.job_path(int(job))
    assert props["OwnerConnected"] == "no"  # the randomctl that started it has left
    # As systemctl show prints times: weekday, date, time and zone.
    assert re.fullmatch(r"[A-Z][a-z]{2} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+", props["Created"])


def test_show_accepts_a_job_path(ctl):
    path = json.loads(ctl("--json", "slow", "4").stdout)["path"]
    data = json.loads(ctl("--json", "show", path).stdout)
    assert data["path"] == path and data["bits"] == 4 and data["owner_connected"] is False


def test_unknown_job_fails(ctl):
    result = ctl("show", "999999")
    assert result.returncode == STATUS["failure"]
    one_line_error(result, "999999")


def test_wait_prints_the_number_of_a_running_job(ctl, polkit_bus, background):
    slow = ctl.start("slow", "50")
    background.append(slow)
    path = running_job(polkit_bus)
    result = ctl("wait", path.rsplit("/", 1)[1])
    assert result.returncode == STATUS["ok"], result.stderr
    stdout, _stderr = slow.communicate(timeout=harness.TIMEOUT)
    assert result.stdout == stdout


def test_wait_for_another_users_job_is_not_authorized(ctl):
    job = str(json.loads(ctl("--json", "slow", "2").stdout)["id"])
    result = ctl("wait", job, user=USER)
    assert result.returncode == STATUS["not_authorized"]
    one_line_error(result, "Authentication is required", api.ACTION_MANAGE_JOBS, "as root")


def test_cancel_of_another_users_job_is_not_authorized(ctl, polkit_bus, background):
    background.append(ctl.start("slow", "200"))
    path = running_job(polkit_bus)
    result = ctl("cancel", path, user=USER)
    assert result.returncode == STATUS["not_authorized"]
    one_line_error(result, "Authentication is required", api.ACTION_MANAGE_JOBS, "as root")
    assert job_state(polkit_bus, path) == "running"


def test_cancel_own_job_as_unprivileged_user(ctl, polkit_bus, background):
    background.append(ctl.start("slow", "200", user=USER))
    path = running_job(polkit_bus, user_uid())
    result = ctl("--json", "cancel", path, user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    assert json.loads(result.stdout) == [{"id": int(path.rsplit("/", 1)[1]), "path": path,
                                          "cancelled": True, "error": None}]
    harness.wait_for(lambda: job_state(polkit_bus, path) == "cancelled", what="cancelled")


def test_cancel_all_cancels_every_running_job(ctl, polkit_bus, background):
    background.append(ctl.start("slow", "200", user=USER))
    path = running_job(polkit_bus, user_uid())
    result = ctl("cancel-all")
    assert result.returncode == STATUS["ok"], result.stderr
    harness.wait_for(lambda: job_state(polkit_bus, path) == "cancelled", what="cancelled")


def test_cancel_all_as_unprivileged_user_is_not_authorized(ctl, polkit_bus, background):
    background.append(ctl.start("slow", "200"))
    path = running_job(polkit_bus)
    result = ctl("cancel-all", user=USER)
    assert result.returncode == STATUS["not_authorized"]
    one_line_error(result, "Authentication is required", api.ACTION_MANAGE_JOBS, "as root")
    assert job_state(polkit_bus, path) == "running"


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
    job = json.loads(ctl("--json", "slow", "20").stdout)["id"]
    text = read_until(monitor.stdout.fileno(), rf'"finished","id":{job}\b.*\n')
    monitor.send_signal(signal.SIGINT)
    assert monitor.wait(harness.TIMEOUT) == STATUS["ok"]
    events = [json.loads(line) for line in text.splitlines()]
    mine = [event["event"] for event in events if event.get("id") == job]
    assert mine[0] == "created" and mine[-1] == "finished" and "progress" in mine
    assert not any("number" in event for event in events)


def test_monitor_prints_events_as_text(ctl, background):
    monitor = ctl.start("monitor")
    background.append(monitor)
    read_until(monitor.stderr.fileno(), "Ctrl-C")
    job = json.loads(ctl("--json", "slow", "4").stdout)["id"]
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
    assert result.returncode == STATUS["usage"]
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
    harness.require_program("man", "man-db")
    harness.require_program("groff", "groff-base")
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
    bash = harness.require_program("bash", "bash")
    result = subprocess.run([bash, "-c", script], capture_output=True, text=True,
                            timeout=harness.TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_bash_completion_offers_commands_and_options():
    assert set(complete("randomctl ''")) >= set(COMMANDS)
    assert complete("randomctl set-") == ["set-interval"]
    assert set(complete("randomctl bytes 16 --")) >= {"--hex", "--base64", "--raw", "--json"}


def test_bash_completion_offers_the_json_modes():
    assert complete("randomctl --json=p") == ["--json=pretty"]


def test_zsh_completion_is_valid_and_names_every_command_and_option():
    path = harness.REPO / "completion/_randomctl"
    zsh = harness.require_program("zsh", "zsh")
    result = subprocess.run([zsh, "-n", str(path)], capture_output=True, text=True,
                            timeout=harness.TIMEOUT)
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    assert text.startswith("#compdef randomctl\n")
    for command in COMMANDS:
        assert f"'{command}:" in text, command
    for option in ("--system", "--session", "--address", "--json", "--no-legend", "--quiet",
                   "--no-pager", "--no-ask-password", "--timeout"):
        assert option in text, option


# -- systemd's conventions: options, JSON, terminals ---------------------------

def test_bare_randomctl_shows_the_status(ctl):
    result = ctl(user=USER)
    assert result.returncode == STATUS["ok"], result.stderr
    assert f"randomd {__version__} is running" in result.stdout


def test_no_pager_is_accepted(ctl):
    result = ctl("--no-pager", "status")
    assert result.returncode == STATUS["ok"], result.stderr


def test_no_legend_drops_the_header_and_the_footer(ctl):
    job = str(json.loads(ctl("--json", "slow", "4").stdout)["id"])
    result = ctl("jobs", "--no-legend")
    assert result.returncode == STATUS["ok"], result.stderr
    lines = result.stdout.splitlines()
    assert all(re.match(r" *\d+ ", line) for line in lines), result.stdout
    assert any(line.split()[0] == job for line in lines)


def test_quiet_draws_no_progress_bar_on_a_terminal(ctl, background):
    status, text = on_terminal(ctl, "-q", "slow", "8", background=background)
    assert status == STATUS["ok"], text
    assert re.fullmatch(r"\d+\n", text), text


def test_bare_json_is_short_and_pretty_is_indented(ctl):
    short = ctl("--json", "status")
    pretty = ctl("--json=pretty", "status")
    assert short.stdout.count("\n") == 1
    assert pretty.stdout.startswith('{\n  "bus": ')
    assert json.loads(short.stdout).keys() == json.loads(pretty.stdout).keys()


def test_json_off_prints_text(ctl):
    result = ctl("--json=off", "quick", "8")
    assert re.fullmatch(r"\d+\n", result.stdout), result.stdout


def test_an_unknown_json_mode_is_a_usage_error(ctl):
    result = ctl("--json=long", "status")
    assert result.returncode == STATUS["usage"]
    one_line_error(result, "--json", "long")


def test_bad_values_exit_with_one_status_whoever_finds_them(ctl):
    refused_by_randomctl = ctl("quick", "abc")
    refused_by_randomd = ctl("quick", "0")
    assert refused_by_randomctl.returncode == refused_by_randomd.returncode == STATUS["usage"]


def test_reload_rereads_the_configuration(fresh_ctl):
    ctl, daemon = fresh_ctl("MaxQuickBits = 10\n")
    daemon.config.write_text("MaxQuickBits = 20\n")
    result = ctl("reload")
    assert result.returncode == STATUS["ok"], result.stderr
    assert json.loads(ctl("--json", "status").stdout)["max_quick_bits"] == 20


def test_reload_of_a_broken_file_fails_naming_the_problem(fresh_ctl):
    ctl, daemon = fresh_ctl("MaxQuickBits = 10\n")
    daemon.config.write_text("MaxQuickBits = 'many'\n")
    result = ctl("reload")
    assert result.returncode == STATUS["failure"]
    one_line_error(result, "MaxQuickBits")
    assert json.loads(ctl("--json", "status").stdout)["max_quick_bits"] == 10


def test_reload_as_unprivileged_user_is_not_authorized(ctl):
    result = ctl("reload", user=USER)
    assert result.returncode == STATUS["not_authorized"]
    one_line_error(result, "Authentication is required", api.ACTION_CONFIGURE)


# JSON documents, checked against the schemas randomctl(1) documents.

def documented_schemas() -> dict[str, object]:
    """randomctl(1)'s JSON OUTPUT section: document name -> schema, types as strings."""
    page = subprocess.run(["groff", "-man", "-Tascii", "-P", "-cbou",
                           str(harness.REPO / "man/randomctl.1")], capture_output=True,
                          text=True, check=True, timeout=harness.TIMEOUT).stdout
    section = page.split("\nJSON OUTPUT\n", 1)[1].split("\nEXIT STATUS\n", 1)[0]
    schemas: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        if re.fullmatch(r" {14}\S.*", line):  # a document's name
            name = line.strip()
            schemas[name] = ""
        elif name is not None and re.fullmatch(r" {18,}\S.*", line):  # its schema, continued
            schemas[name] += line.strip() + " "
        else:
            name = None
    # Type words become strings: {"bits": int} -> {"bits": "int"}.
    return {name: json.loads(re.sub(r'(?<![\w"])([A-Za-z][\w|]*)(?![\w"])', r'"\1"', text))
            for name, text in schemas.items()}


SCHEMAS = documented_schemas()
TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool, "null": type(None)}


def conforms(value: object, schema: object, where: str = "$") -> None:
    """Assert that *value* has exactly the keys and types of *schema*."""
    if isinstance(schema, str) and schema in ("JOB", "ERROR"):
        schema = SCHEMAS[schema.lower()]
    if isinstance(schema, dict):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        assert value.keys() == schema.keys(), f"{where}: keys {sorted(value)} != {sorted(schema)}"
        for key, item in schema.items():
            conforms(value[key], item, f"{where}.{key}")
    elif isinstance(schema, list):
        assert isinstance(value, list), f"{where}: {value!r} is not a list"
        for index, item in enumerate(value):
            conforms(item, schema[0], f"{where}[{index}]")
    else:
        alternatives = schema.split("|")
        if value is None:
            assert "null" in alternatives, f"{where}: null is not {schema}"
        elif isinstance(value, dict):
            assert set(alternatives) & {"JOB", "ERROR"}, f"{where}: an object is not {schema}"
            conforms(value, next(a for a in alternatives if a in ("JOB", "ERROR")), where)
        else:
            kinds = tuple(t for a in alternatives if a in TYPES for t in
                          (TYPES[a] if isinstance(TYPES[a], tuple) else (TYPES[a],)))
            wrong_bool = isinstance(value, bool) and bool not in kinds
            assert isinstance(value, kinds) and not wrong_bool, (
                f"{where}: {value!r} is not {schema}")


def test_the_man_page_documents_every_command_s_json():
    assert set(COMMANDS) - {"monitor"} <= set(SCHEMAS)
    assert {"job", "error", "slow --no-wait", "monitor created", "monitor finished"} <= set(SCHEMAS)


@pytest.mark.parametrize("document, argv", [
    ("quick", ["quick", "8"]),
    ("bytes", ["bytes", "4"]),
    ("slow", ["slow", "4"]),
    ("slow --no-wait", ["slow", "--no-wait", "4"]),
    ("jobs", ["jobs"]),
    ("status", ["status"]),
    ("cancel-all", ["cancel-all"]),
    ("set-interval", ["set-interval", str(INTERVAL)]),
])
def test_json_follows_the_man_page(ctl, background, document, argv):
    # background: a job "slow --no-wait" leaves running is cancelled at the end.
    ctl("slow", "2")  # at least one job to list
    result = ctl("--json", *argv)
    assert result.returncode == STATUS["ok"], result.stderr
    conforms(json.loads(result.stdout), SCHEMAS[document])


def test_json_of_show_wait_and_cancel_follows_the_man_page(ctl):
    job = str(json.loads(ctl("--json", "slow", "2").stdout)["id"])
    for document, argv in (("show", ["show", job]), ("wait", ["wait", job]),
                           ("cancel", ["cancel", job, "999999"])):
        result = ctl("--json", *argv)
        conforms(json.loads(result.stdout), SCHEMAS[document], document)


def test_json_of_reload_follows_the_man_page(fresh_ctl):
    ctl, _daemon = fresh_ctl()
    conforms(json.loads(ctl("--json", "reload").stdout), SCHEMAS["reload"])


@pytest.mark.parametrize("argv", [["quick", "0"], ["show", "999999"], ["set-interval", "1"],
                                  ["slow", "--timeout", "0.05", "200"]])
def test_json_errors_follow_the_man_page(ctl, argv):
    result = ctl("--json", *argv, user=USER)
    assert result.returncode != STATUS["ok"]
    conforms(json.loads(result.stdout), {"error": "ERROR"})


def test_json_monitor_events_follow_the_man_page(ctl, background):
    monitor = ctl.start("--json", "monitor")
    background.append(monitor)
    read_until(monitor.stderr.fileno(), "Ctrl-C")
    job = json.loads(ctl("--json", "slow", "20").stdout)["id"]
    text = read_until(monitor.stdout.fileno(), rf'"finished","id":{job}\b.*\n')
    monitor.send_signal(signal.SIGINT)
    monitor.wait(harness.TIMEOUT)
    events = [json.loads(line) for line in text.splitlines()]
    assert {"created", "progress", "finished"} <= {event["event"] for event in events}
    for event in events:
        conforms(event, SCHEMAS[f"monitor {event['event']}"], event["event"])


# Terminals: the progress bar's width, colours.

def redraws(text: str) -> list[str]:
    """Each state of the progress bar's line, as the terminal shows it in turn."""
    return [part.replace("\x1b[K", "").split("\n")[0]
            for part in text.split("\r") if part.startswith("[")]


@pytest.mark.parametrize("columns", [40, 200])
@pytest.mark.parametrize("user", [None, USER], ids=["root", "user"])
def test_progress_bar_never_wraps(ctl, background, columns, user):
    status, text = on_terminal(ctl, "slow", "16", columns=columns, user=user,
                               background=background)
    assert status == STATUS["ok"], text
    lines = redraws(text)
    assert lines and all(len(line) < columns for line in lines), lines
    assert re.fullmatch(r"\[#+\] 16/16 bits  100%.*", lines[-1]), lines
    if columns == 40:  # the ETA and the elapsed time made way for the bar
        assert not any("elapsed" in line for line in lines), lines
    else:
        assert any("ETA" in line for line in lines), lines
    assert re.search(r"\n(\d+)\n$", text), text  # the number on a clean line of its own


def test_progress_bar_follows_the_terminal_s_width(fresh_ctl, background):
    """Narrowed while it runs, the bar drops its times and stays within the width
    (redrawn at SIGWINCH, or at the next tick of its clock at the latest)."""
    ctl, _daemon = fresh_ctl("SlowBitInterval = 0.2\n")
    process, master = start_on_terminal(ctl, "slow", "30", columns=200)
    background.append(process)
    try:
        read_until(master, r"ETA \S+")
        set_columns(master, 40)
        text = read_until(master, r"\r\[[#-]+\] +\d+/30 bits +\d+%\x1b\[K")
    finally:
        process.kill()
        os.close(master)
    assert len(redraws(text)[-1]) < 40


def test_job_states_are_coloured_on_a_terminal(ctl, background):
    ctl("slow", "2")
    status, text = on_terminal(ctl, "jobs", background=background)
    assert status == STATUS["ok"], text
    assert "\x1b[32mcompleted" in text


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"SYSTEMD_COLORS": "0"}, {"TERM": "dumb"}])
def test_colours_can_be_turned_off_on_a_terminal(ctl, background, env):
    ctl("slow", "2")
    status, text = on_terminal(ctl, "jobs", env=env, background=background)
    assert status == STATUS["ok"], text
    assert "\x1b[" not in text


def test_job_states_are_not_coloured_when_piped_unless_forced(ctl):
    ctl("slow", "2")
    assert "\x1b[" not in ctl("jobs").stdout
    assert "\x1b[32mcompleted" in ctl("jobs", env={"SYSTEMD_COLORS": "1"}).stdout


# The polkit agent.

def pkttyagents_of(pid: int) -> dict[int, list[str]]:
    """The pkttyagent processes descending from *pid*: their pids and command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
            ancestor = int(entry.name)
            while ancestor not in (0, 1, pid):
                status_text = Path(f"/proc/{ancestor}/status").read_text()
                ancestor = int(re.search(r"^PPid:\s+(\d+)", status_text, re.MULTILINE)[1])
        except (OSError, TypeError):
            continue  # gone meanwhile
        if ancestor == pid and argv and os.path.basename(argv[0]) == b"pkttyagent":
            found[int(entry.name)] = [arg.decode() for arg in argv]
    return found


def test_a_polkit_agent_runs_on_the_terminal_during_a_call_that_may_ask(ctl, randomd,
                                                                        background):
    """randomd is stopped while randomctl calls it, so the agent can be seen in between."""
    randomd.process.send_signal(signal.SIGSTOP)
    try:
        process, master = start_on_terminal(ctl, "set-interval", "1", user=USER)
        background.append(process)
        agents = harness.wait_for(lambda: pkttyagents_of(process.pid), what="a pkttyagent")
    finally:
        randomd.process.send_signal(signal.SIGCONT)
    try:
        read_to_end(master)
    finally:
        os.close(master)
    assert process.wait(harness.TIMEOUT) == STATUS["not_authorized"]
    ((agent, argv),) = agents.items()
    assert argv[1] == "--notify-fd" and argv[2].isdigit() and argv[3:] == ["--fallback"]
    assert not Path(f"/proc/{agent}").exists()  # stopped (and reaped) before randomctl ended
