"""Real components for the integration tests: a system-like bus, randomd, other users.

The bus is a private dbus-daemon configured like the system bus (default
deny, EXTERNAL auth) that loads the shipped policy from conf/dbus-1/system.d.
randomd runs as a real subprocess under the ``randomd`` uid, and tells the
harness it is ready through a NOTIFY_SOCKET the harness owns, as systemd would.

Other uids run code from REPO: the checkout itself when any uid can read it,
otherwise (a clone under /root, mode 0700) a world-readable copy of it made
at import and removed at exit.  CHECKOUT is where the tests came from.
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
# Not needed by other uids, and not worth copying.
NOT_COPIED = (".git", "build", "__pycache__", ".pytest_cache", ".hypothesis")
# Other uids cannot read a Python installed under /root: use Debian's, or a
# venv that the randomd uid can read (packaging/run-venv-tests sets this).
PYTHON = os.environ.get("RANDOMD_TEST_PYTHON", "/usr/bin/python3")
DAEMON_USER = "randomd"
TEST_USER = "randomd-test"
LIBRARIES = ("dbus_fast", "dbus_next")
TIMEOUT = 10.0

STDERR_TAIL = 20  # lines of randomd's stderr quoted when it does not start

# Every temporary directory the harness made, so that none outlives the run,
# even when a test fails before it stops what it started.
_tempdirs: set[Path] = set()


@atexit.register
def _remove_tempdirs() -> None:
    for path in _tempdirs:
        shutil.rmtree(path, ignore_errors=True)


def readable_by_anyone(top: Path) -> bool:
    """Whether a uid outside our groups can enter *top* and read every file in it.

    Judged by the "other" mode bits, which is what decides for the randomd
    user: it is in none of root's groups.
    """
    if any(not d.stat().st_mode & stat.S_IXOTH for d in top.parents):
        return False
    for directory, subdirs, files in os.walk(top):
        subdirs[:] = [d for d in subdirs if d not in NOT_COPIED]
        if os.stat(directory).st_mode & 0o005 != 0o005:
            return False
        if any(not os.stat(os.path.join(directory, f)).st_mode & stat.S_IROTH for f in files):
            return False
    return True


def _publish(tree: Path) -> None:
    """Let every uid read *tree* and enter its directories; executables stay executable."""
    for directory, _subdirs, files in os.walk(tree):
        os.chmod(directory, 0o755)
        for name in files:
            path = os.path.join(directory, name)
            mode = os.stat(path).st_mode
            os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)


def runnable_tree(checkout: Path) -> Path:
    """*checkout* if any uid can read it, else a world-readable copy removed at exit."""
    if readable_by_anyone(checkout):
        return checkout
    copy = public_tempdir("randomd-tree-")
    shutil.copytree(checkout, copy, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(*NOT_COPIED))
    _publish(copy)
    return copy


def ensure_user(name: str) -> pwd.struct_passwd:
    """The system user *name*, created if missing (the bus drops unknown uids)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                       check=True)
        return pwd.getpwnam(name)


def as_user(user: str | None, argv: Sequence[str]) -> list[str]:
    """*argv* run as *user* (None: as ourselves, root).

    *user* may not be able to read the checkout: a path into it (a script of
    the tests) becomes the same path in REPO.
    """
    if user is None:
        return list(argv)
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
            *map(readable_path, argv)]


def readable_path(arg: str) -> str:
    """*arg*, or if it is a path in CHECKOUT, the same path in REPO."""
    checkout = str(CHECKOUT)
    if REPO != CHECKOUT and (arg == checkout or arg.startswith(checkout + "/")):
        return str(REPO) + arg[len(checkout):]
    return arg


def public_tempdir(prefix: str) -> Path:
    """A fresh directory other uids can enter (sockets and configs live there)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    _tempdirs.add(path)
    return path


def remove_tempdir(path: Path) -> None:
    """Remove a directory made by public_tempdir()."""
    shutil.rmtree(path, ignore_errors=True)
    _tempdirs.discard(path)


REPO = runnable_tree(CHECKOUT)
BUS_CONFIG_TEMPLATE = REPO / "packaging/system-like-bus.conf.in"


def wait_for(condition, timeout: float = TIMEOUT, what: str = "condition"):
    """Poll *condition* until it returns a true value; fail after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class SystemBus:
    """A private dbus-daemon with the system bus's rules and randomd's shipped policy."""

    def __init__(self, includedirs: Sequence[Path] = ()) -> None:
        self.dir = public_tempdir("randomd-bus-")
        self.socket = self.dir / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        dirs = [REPO / "conf/dbus-1/system.d", *includedirs]
        includes = "\n  ".join(f"<includedir>{d}</includedir>" for d in dirs)
        config = self.dir / "bus.conf"
        template = BUS_CONFIG_TEMPLATE.read_text()
        config.write_text(template.replace("@SOCKET@", str(self.socket))
                          .replace("@INCLUDEDIRS@", includes))
        self.process = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1",
             "--nosyslog"], stdout=subprocess.PIPE, text=True)
        self.process.stdout.readline()  # printed once it listens

    def env(self) -> dict[str, str]:
        """An environment whose system bus is this one."""
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(TIMEOUT)
        finally:
            remove_tempdir(self.dir)


class NotifySocket:
    """The NOTIFY_SOCKET systemd would give a service, read as datagrams arrive.

    Like systemd, it reads continuously (a thread), so randomd never finds the
    socket full; tests wait on what has arrived.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.path.chmod(0o777)
        self.sock.settimeout(0.1)  # only so that close() stops the reader
        self.messages: list[dict[str, str]] = []
        self._arrived = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            message = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            with self._arrived:
                self.messages.append(message)
                self._arrived.notify_all()

    def _find(self, key: str, value: str | None) -> dict | None:
        return next((m for m in self.messages if key in m and value in (None, m[key])), None)

    def wait_for(self, key: str, value: str | None = None, timeout: float = TIMEOUT,
                 gone: Callable[[], bool] = lambda: False) -> dict:
        """The first datagram that sets *key* (to *value*), waiting for it if need be.

        Waiting stops early once *gone()* is true (the sender exited): nothing
        more can arrive then.
        """
        deadline = time.monotonic() + timeout
        exited = False
        with self._arrived:
            while not self._find(key, value):
                if not exited and gone():
                    # What it sent just before it exited may not be read yet.
                    exited = True
                    deadline = min(deadline, time.monotonic() + 0.5)
                left = deadline - time.monotonic()
                if left <= 0:
                    why = "before it exited" if exited else f"in {timeout} s"
                    raise AssertionError(f"no {key}={value or '*'} from randomd {why}; "
                                         f"got {self.messages}")
                # Woken by each datagram; the short bound is for noticing an exit.
                self._arrived.wait(min(left, 0.05))
            return self._find(key, value)

    def close(self) -> None:
        self._closed = True
        self._reader.join(TIMEOUT)
        self.sock.close()


class Randomd:
    """randomd as a subprocess under the randomd uid, on a SystemBus."""

    def __init__(self, bus: SystemBus, library: str, config: str = "",
                 user: str | None = DAEMON_USER, args: Sequence[str] = (),
                 env: dict[str, str] | None = None, wrapper: Sequence[str] = ()) -> None:
        self.bus = bus
        self.dir = public_tempdir("randomd-daemon-")
        self.config = self.dir / "randomd.conf"
        self.config.write_text(config)
        self.config.chmod(0o644)
        self.log = self.dir / "stderr.log"
        self.notify = NotifySocket(self.dir)
        argv = [PYTHON, "-m", "randomd", "--address", bus.address,
                "--config", str(self.config), *args]
        environment = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO),
                       "RANDOMD_BUS_LIBRARY": library, "NOTIFY_SOCKET": str(self.notify.path),
                       **(env or {})}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([*wrapper, *as_user(user, argv)], env=environment,
                                            stdout=log, stderr=log, cwd="/")

    def wait_ready(self) -> Randomd:
        """Return once randomd said READY=1 (it owns its name); fail at once if it exits."""
        try:
            self.notify.wait_for("READY", "1", gone=lambda: self.process.poll() is not None)
        except AssertionError:
            raise AssertionError(f"randomd did not become ready ({self.exit_text()}); "
                                 f"its log:\n{self.stderr()}") from None
        return self

    def exit_text(self) -> str:
        """How the process ended so far, in words."""
        status = self.process.poll()
        if status is None:
            return "still running"
        return f"exited with status {status}" if status >= 0 else f"killed by signal {-status}"

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, sig: int = signal.SIGTERM) -> int:
        """Send *sig* and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(TIMEOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(TIMEOUT)
        self.notify.close()
        remove_tempdir(self.dir)


def start_problem(library: str) -> str | None:
    """Why randomd cannot start under its uid on *library*, in its own words; None if it can.

    A run of the whole suite asks this once, so that a daemon that cannot
    start (it cannot read its code, an import fails) stops the suite at once.
    """
    bus = SystemBus()
    daemon = Randomd(bus, library)
    try:
        daemon.notify.wait_for("READY", "1", gone=lambda: daemon.process.poll() is not None)
        return None
    except AssertionError:
        lines = daemon.stderr().splitlines()[-STDERR_TAIL:] or ["(nothing)"]
        where = "" if REPO == CHECKOUT else f" (from a world-readable copy in {REPO})"
        ended = daemon.exit_text()
        if ended == "still running":
            ended = f"did not say READY=1 within {TIMEOUT} s"
        return (f"randomd cannot start under uid {DAEMON_USER} on {library}{where}: it "
                f"{ended}.  The last lines of its stderr:\n    " + "\n    ".join(lines))
    finally:
        daemon.stop()
        bus.stop()


def managed_jobs(bus: SystemBus) -> dict[str, dict[str, object]]:
    """Every job randomd exports, read by busctl as root: path -> {property: value}."""
    result = busctl(bus, "--json=short", "call", "org.randomd.Random1", "/org/randomd/Random1",
                    "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", check=True)
    objects = json.loads(result.stdout)["data"][0]
    job = "org.randomd.Random1.Job"
    return {path: {name: value["data"] for name, value in interfaces[job].items()}
            for path, interfaces in objects.items()}


def busctl(bus: SystemBus, *args: str, user: str | None = None,
           check: bool = False) -> subprocess.CompletedProcess:
    """Run busctl against *bus*, as *user*."""
    argv = as_user(user, ["busctl", f"--address={bus.address}", *args])
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=check)


# -- a process's memory and open files, read from /proc ---------------------------


def rss_kb(pid: int) -> int:
    """The resident memory of process *pid*, in kB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def fd_count(pid: int) -> int:
    """How many files process *pid* has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


async def fds_at_most(pid: int, bound: int) -> bool:
    """Whether *pid* has at most *bound* files open: a condition for clients.wait_until."""
    return fd_count(pid) <= bound


# -- prerequisites: a missing one fails the test, saying what to install ------------


def require_program(program: str, package: str) -> str:
    """The path of *program*; fails (never skips) saying which package installs it."""
    path = shutil.which(program)
    if path is None:
        raise AssertionError(f"{program} is missing: apt-get install {package}")
    return path
