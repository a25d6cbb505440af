"""Faults around randomd: what it does, and what its clients see, when things break.

Covered elsewhere, referenced rather than repeated:
- dbus-daemon stalled (SIGSTOP/SIGCONT): no reply lost or reordered
  (test_stall.py);
- dbus-daemon killed: randomd exits non-zero (test_lifecycle.py); here, with
  jobs running, promptly and with one log line;
- polkitd restarted or frozen during a check: AccessDenied, and checks work
  again afterwards (test_polkit.py); here, polkitd killed with SIGKILL;
- SIGHUP with an invalid value in the config: the old one stays
  (test_lifecycle.py); here, a config that cannot be read or decoded.

Also here: randomd killed with SIGKILL mid-jobs and restarted (running jobs
are lost, waiting clients get an error at once, ids start again at 1); bad
config files at start (exit 78 and one line); a full disk (randomd writes no
file); wall-clock jumps (jobs are timed by the monotonic clock).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import harness
import pytest
from clients import SignalRecorder, add_match, call, error_of, get_property
from polkit_harness import (
    ACCESS_DENIED,
    AuthorityMonitor,
    Polkitd,
    UserClient,
    policy_bus,
    reply_of,
)

from randomd import api, dbus

ERROR = api.ERROR_PREFIX
NO_REPLY = "org.freedesktop.DBus.Error.NoReply"
EX_CONFIG = 78
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
DAY_US = 86400 * 10**6


async def job_call(bus, path: str, member: str) -> list:
    return await call(bus, member, path=path, interface=api.JOB_INTERFACE)


async def connect(daemon: harness.Randomd):
    return await dbus.connect(daemon.bus.address)


# -- the bus dies --------------------------------------------------------------


async def test_losing_the_bus_mid_jobs_exits_1_at_once_with_one_error_line(start_randomd):
    daemon = start_randomd("SlowBitInterval = 60\n").wait_ready()
    client = await connect(daemon)
    for _ in range(3):
        await call(client, "Slow", "u", [8])
    daemon.bus.process.kill()
    started = time.monotonic()
    assert await asyncio.to_thread(daemon.process.wait, harness.TIMEOUT) == 1
    assert time.monotonic() - started < 2.0
    lines = daemon.stderr().splitlines()
    errors = [line for line in lines if "ERROR" in line]
    assert len(errors) == 1 and errors[0].startswith(
        "randomd: ERROR: lost the connection to the bus"), lines
    assert "Traceback" not in daemon.stderr()
    client.disconnect()


# -- randomd dies --------------------------------------------------------------


async def test_sigkill_mid_jobs_answers_waiting_clients_with_no_reply_at_once(start_randomd):
    daemon = start_randomd("SlowBitInterval = 60\n").wait_ready()
    client = await connect(daemon)
    paths = [(await call(client, "Slow", "u", [8]))[0] for _ in range(3)]
    waits = [asyncio.ensure_future(job_call(client, path, "Wait")) for path in paths]
    await call(client, "Ping", path="/", interface="org.freedesktop.DBus.Peer")
    daemon.process.kill()
    errors = await asyncio.wait_for(asyncio.gather(*(error_of(w) for w in waits)), 5)
    assert {error.type for error in errors} == {NO_REPLY}
    client.disconnect()


async def test_sigkill_loses_running_jobs_and_sends_no_finished(start_randomd):
    daemon = start_randomd("SlowBitInterval = 60\n").wait_ready()
    client = await connect(daemon)
    recorder = SignalRecorder(client)
    await add_match(client, f"type='signal',member='NameOwnerChanged',arg0='{api.BUS_NAME}'")
    await call(client, "Slow", "u", [8])
    daemon.process.kill()
    await recorder.wait_for(lambda m: m.member == "NameOwnerChanged" and m.body[2] == "")
    assert not [m for m in recorder.signals if m.member == "Finished"]
    client.disconnect()


async def test_a_restarted_randomd_serves_with_an_empty_table_and_ids_from_1(start_randomd):
    config = "SlowBitInterval = 60\n"
    first = start_randomd(config).wait_ready()
    client = await connect(first)
    old = [(await call(client, "Slow", "u", [8]))[0] for _ in range(3)]
    first.process.kill()
    first.process.wait(harness.TIMEOUT)
    start_randomd(config).wait_ready()
    # The same connection reaches the new randomd through the well-known name.
    assert await get_property(client, "JobsStarted") == 0
    assert await get_property(client, "ActiveJobs") == 0
    (objects,) = await call(client, "GetManagedObjects",
                            interface="org.freedesktop.DBus.ObjectManager")
    assert objects == {}
    for path in old[1:]:
        error = await error_of(job_call(client, path, "Wait"))
        assert error.type == ERROR + "NoSuchJob"
    (path,) = await call(client, "Slow", "u", [8])
    assert path == api.job_path(1)
    client.disconnect()


# -- polkitd dies --------------------------------------------------------------


@pytest.fixture
def polkit_bus(users):
    system_bus = policy_bus()
    yield system_bus
    system_bus.stop()


async def test_polkitd_killed_mid_check_is_access_denied_then_checks_work_again(
        polkit_bus, library):
    daemon = harness.Randomd(polkit_bus, library, "SlowBitInterval = 60\n")
    polkitd = Polkitd(polkit_bus)
    user = monitor_connection = None
    try:
        daemon.wait_ready()
        polkitd.start()
        user = await UserClient.start(polkit_bus, harness.TEST_USER)
        monitor_connection = await dbus.connect(polkit_bus.address)
        (randomd_name,) = await dbus.call(monitor_connection, dbus.Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="GetNameOwner", signature="s",
            body=[api.BUS_NAME]), harness.TIMEOUT)
        monitor = await AuthorityMonitor.start(monitor_connection)
        polkitd.pause()  # the check waits in polkitd...
        pending = user.send("Slow", "u", [8])
        await monitor.wait_for(randomd_name, "CheckAuthorization")
        polkitd.process.send_signal(signal.SIGKILL)  # ...which dies
        reply = await reply_of(pending)
        assert reply.error == ACCESS_DENIED and "polkit stopped before answering" in reply.text
        await asyncio.to_thread(polkitd.restart)
        reply = await user.call("Slow", "u", [8])
        assert reply.error is None, reply
    finally:
        if user is not None:
            await user.close()
        if monitor_connection is not None:
            monitor_connection.disconnect()
        polkitd.close()
        daemon.stop()


# -- configuration at start ----------------------------------------------------


@pytest.fixture
def public_dir():
    """A directory the randomd user may enter (pytest's tmp_path is root's alone)."""
    directory = harness.public_tempdir("randomd-faults-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def assert_config_refused(daemon: harness.Randomd, words: str) -> None:
    assert daemon.process.wait(harness.TIMEOUT) == EX_CONFIG
    lines = daemon.stderr().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("randomd: "), lines
    assert not any("READY" in m for m in daemon.notify.messages)


def test_an_unreadable_config_file_exits_78_with_one_line(start_randomd, public_dir):
    path = public_dir / "randomd.conf"
    path.write_text("MaxQuickBits = 10\n")
    path.chmod(0o600)  # root's: the randomd user cannot read it
    daemon = start_randomd(args=["--config", str(path)])
    assert_config_refused(daemon, f"{path}: cannot be read: Permission denied")


def test_a_config_in_a_directory_randomd_cannot_enter_exits_78(start_randomd, public_dir):
    directory = public_dir / "closed"
    directory.mkdir(mode=0o700)
    (directory / "randomd.conf").write_text("MaxQuickBits = 10\n")
    daemon = start_randomd(args=["--config", str(directory / "randomd.conf")])
    assert_config_refused(daemon, "cannot be read: Permission denied")


def test_a_config_path_that_is_a_directory_exits_78(start_randomd, public_dir):
    daemon = start_randomd(args=["--config", str(public_dir)])
    assert_config_refused(daemon, "cannot be read: Is a directory")


@pytest.mark.parametrize("content, words", [
    (b"MaxQuickBits = 1\xff\n", "not valid TOML: not UTF-8"),
    (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "not valid TOML: nested too deeply"),
], ids=["latin-1", "nested"])
def test_a_config_that_is_not_toml_text_exits_78(start_randomd, public_dir, content, words):
    path = public_dir / "randomd.conf"
    path.write_bytes(content)
    path.chmod(0o644)
    daemon = start_randomd(args=["--config", str(path)])
    assert_config_refused(daemon, words)


async def test_a_config_directory_randomd_cannot_write_is_fine(start_randomd):
    daemon = start_randomd("MaxQuickBits = 10\n")
    daemon.dir.chmod(0o555)
    daemon.wait_ready()
    client = await connect(daemon)
    assert await get_property(client, "MaxQuickBits") == 10
    client.disconnect()


async def test_a_missing_config_file_means_the_defaults(start_randomd, public_dir):
    daemon = start_randomd(args=["--config", str(public_dir / "absent.conf")]).wait_ready()
    client = await connect(daemon)
    assert await get_property(client, "MaxQuickBits") == 4096
    assert await get_property(client, "MaxJobsPerUser") == 64
    client.disconnect()


# -- configuration on SIGHUP ---------------------------------------------------


async def reload(daemon: harness.Randomd) -> None:
    daemon.notify.messages.clear()
    daemon.process.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("RELOADING", "1")
    daemon.notify.wait_for("READY", "1")


@pytest.mark.parametrize("breakage", ["unreadable", "latin-1"])
async def test_sighup_with_a_config_it_cannot_read_keeps_the_old_one(start_randomd, breakage):
    daemon = start_randomd("MaxQuickBits = 10\n").wait_ready()
    if breakage == "unreadable":
        daemon.config.write_text("MaxQuickBits = 20\n")
        daemon.config.chmod(0o600)
    else:
        daemon.config.write_bytes(b"MaxQuickBits = 20 # \xe9t\xe9\n")
    await reload(daemon)
    client = await connect(daemon)
    assert await get_property(client, "MaxQuickBits") == 10
    client.disconnect()
    log = daemon.stderr()
    assert "reload failed, keeping the old configuration" in log and "Traceback" not in log


# -- randomd launched by hand ---------------------------------------------------


class LaunchedRandomd:
    """randomd as the randomd user with things harness.Randomd cannot give it.

    *prefix* runs before the privilege drop (e.g. prlimit), *inner_env* only
    in randomd's own process (set by env(1) after the drop, so that a
    preloaded library never loads into setpriv).  Its stderr is a pipe, as to
    journald under systemd.
    """

    def __init__(self, bus: harness.SystemBus, library: str, config: str,
                 prefix: list[str] = (), inner_env: dict[str, str] | None = None) -> None:
        self.dir = harness.public_tempdir("randomd-launched-")
        config_path = self.dir / "randomd.conf"
        config_path.write_text(config)
        config_path.chmod(0o644)
        self.notify = harness.NotifySocket(self.dir)
        inner = [f"{key}={value}" for key, value in (inner_env or {}).items()]
        argv = [*prefix, *harness.as_user(harness.DAEMON_USER, [
            "env", *inner, harness.PYTHON, "-m", "randomd", "--address", bus.address,
            "--config", str(config_path)])]
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(harness.REPO),
               "RANDOMD_BUS_LIBRARY": library, "NOTIFY_SOCKET": str(self.notify.path)}
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, cwd="/")
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self) -> LaunchedRandomd:
        try:
            self.notify.wait_for("READY", "1")
        except AssertionError as error:
            raise AssertionError(f"randomd did not become ready; its log: {self.lines}") from error
        return self

    def stop(self) -> int:
        """SIGTERM; the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(harness.TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(harness.TIMEOUT)
            self._reader.join(harness.TIMEOUT)
            self.notify.close()
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def launch(library):
    """Start LaunchedRandomd on a bus of its own; both stop after the test."""
    started: list[tuple[harness.SystemBus, LaunchedRandomd]] = []

    def start(config: str, **kwargs) -> LaunchedRandomd:
        bus = harness.SystemBus()
        daemon = LaunchedRandomd(bus, library, config, **kwargs)
        daemon.bus = bus
        started.append((bus, daemon))
        return daemon

    yield start
    for bus, daemon in started:
        daemon.stop()
        bus.stop()


# -- a full disk ---------------------------------------------------------------


async def test_randomd_needs_no_disk_space(launch):
    """RLIMIT_FSIZE 0: any write that would grow a file fails (EFBIG), as on a full disk."""
    daemon = launch("SlowBitInterval = 0.01\nLogLevel = \"debug\"\n",
                    prefix=["prlimit", "--fsize=0", "--"]).wait_ready()
    client = await dbus.connect(daemon.bus.address)
    (number,) = await call(client, "Quick", "u", [64])
    (data,) = await call(client, "Bytes", "u", [4096])
    (path,) = await call(client, "Slow", "u", [8])
    (result,) = await job_call(client, path, "Wait")
    client.disconnect()
    assert int(number) < 2**64 and len(data) == 4096 and int(result) < 256
    assert daemon.stop() == 0
    assert any("serving org.randomd.Random1" in line for line in daemon.lines), daemon.lines
    assert not any("Traceback" in line or "Logging error" in line for line in daemon.lines)


# -- the wall clock jumps ------------------------------------------------------


@pytest.fixture
def jumping_clock(launch):
    """Start randomd with libfaketime reading its wall-clock offset from a file.

    The monotonic clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC), as when
    an administrator or NTP steps the time.  Returns (daemon, jump), where
    jump(offset) sets the offset, e.g. "+1d" or "-1d".
    """
    if not LIBFAKETIME.exists():
        pytest.fail(f"{LIBFAKETIME} is missing: apt-get install libfaketime")
    offsets = harness.public_tempdir("randomd-clock-")
    offset = offsets / "offset"
    offset.write_text("+0\n")
    offset.chmod(0o644)
    pids: list[int] = []

    def start(config: str):
        daemon = launch(config, inner_env={
            "LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(offset),
            "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}).wait_ready()
        pids.append(daemon.process.pid)
        return daemon, lambda value: offset.write_text(value + "\n")

    yield start
    shutil.rmtree(offsets, ignore_errors=True)
    for pid in pids:  # libfaketime's shared memory, should randomd not remove it
        for name in (f"faketime_shm_{pid}", f"sem.faketime_sem_{pid}"):
            Path("/dev/shm", name).unlink(missing_ok=True)


async def test_a_forward_jump_of_the_wall_clock_does_not_expire_a_job(jumping_clock):
    daemon, jump = jumping_clock("SlowBitInterval = 0.1\nJobTimeout = 5\n")
    client = await dbus.connect(daemon.bus.address)
    (path,) = await call(client, "Slow", "u", [8])  # 0.8 s, well within JobTimeout
    jump("+1d")
    (number,) = await job_call(client, path, "Wait")
    assert int(number) < 256
    created = await get_property(client, "Created", api.JOB_INTERFACE, path)
    finished = await get_property(client, "Finished", api.JOB_INTERFACE, path)
    # Created and Finished are wall-clock times, and randomd saw the jump.
    assert DAY_US <= finished - created < DAY_US + 10 * 10**6
    client.disconnect()


async def test_a_backward_jump_of_the_wall_clock_does_not_delay_expiry(jumping_clock):
    daemon, jump = jumping_clock("SlowBitInterval = 60\nJobTimeout = 1\n")
    client = await dbus.connect(daemon.bus.address)
    (path,) = await call(client, "Slow", "u", [8])
    started = time.monotonic()
    jump("-1d")
    error = await error_of(job_call(client, path, "Wait"))
    assert error.type == ERROR + "Expired"
    assert time.monotonic() - started < 3.0
    created = await get_property(client, "Created", api.JOB_INTERFACE, path)
    finished = await get_property(client, "Finished", api.JOB_INTERFACE, path)
    assert finished < created  # as the wall clock says
    client.disconnect()
