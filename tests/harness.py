"""Real components for the integration tests: a system-like bus, randomd, other users.

The bus is a private dbus-daemon configured like the system bus (default
deny, EXTERNAL auth) that loads the shipped policy from conf/dbus-1/system.d.
randomd runs as a real subprocess under the ``randomd`` uid, and tells the
harness it is ready through a NOTIFY_SOCKET the harness owns, as systemd would.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
# Other uids cannot read a Python installed under /root: use Debian's, or a
# venv that the randomd uid can read (packaging/run-venv-tests sets this).
PYTHON = os.environ.get("RANDOMD_TEST_PYTHON", "/usr/bin/python3")
DAEMON_USER = "randomd"
TEST_USER = "randomd-test"
LIBRARIES = ("dbus_fast", "dbus_next")
TIMEOUT = 10.0

BUS_CONFIG_TEMPLATE = REPO / "packaging/system-like-bus.conf.in"


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
    """*argv* run as *user* (None: as ourselves, root)."""
    if user is None:
        return list(argv)
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]


def public_tempdir(prefix: str) -> Path:
    """A fresh directory other uids can enter (sockets and configs live there)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


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
        self.process.wait(TIMEOUT)
        shutil.rmtree(self.dir, ignore_errors=True)


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

    def wait_for(self, key: str, value: str | None = None, timeout: float = TIMEOUT) -> dict:
        """The first datagram that sets *key* (to *value*), waiting for it if need be."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._find(key, value), timeout):
                raise AssertionError(f"no {key}={value or '*'} from randomd in {timeout} s; "
                                     f"got {self.messages}")
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

    def wait_ready(self) -> "Randomd":
        """Return once randomd said READY=1 (it owns its name)."""
        try:
            self.notify.wait_for("READY", "1")
        except AssertionError:
            raise AssertionError(f"randomd did not become ready; its log:\n{self.stderr()}")
        return self

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
        shutil.rmtree(self.dir, ignore_errors=True)


def busctl(bus: SystemBus, *args: str, user: str | None = None,
           check: bool = False) -> subprocess.CompletedProcess:
    """Run busctl against *bus*, as *user*."""
    argv = as_user(user, ["busctl", f"--address={bus.address}", *args])
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=check)
