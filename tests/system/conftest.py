"""The `testbed` fixture: a Debian container booted with systemd, randomd installed.

packaging/testbed does the work (image, boot, teardown); it is imported here
as a module. See README.md in this folder.

Environment:
  RANDOMD_TESTBED_SUITE   bookworm (default) or trixie: the container's release.
  RANDOMD_TESTBED_BUS     dbus-daemon (default) or dbus-broker: its system bus.
  RANDOMD_TESTBED   `container` (the default): boot a container as above.
                    `local`: run every command directly on this machine,
                    which must be booted with systemd and have randomd
                    installed already: an autopkgtest testbed
                    (debian/tests/system) or a disposable VM. The tests
                    stop, restart, kill and finally purge and reinstall
                    randomd there, so never use it on a machine you care for.
  RANDOMD_DEB_DIR   folder of .debs to install in the container (default
                    build/deb/ at the top of the repository); `none` boots
                    the bare image, for tests that do not need randomd.
  RANDOMD_TESTBED_PACKAGES   local mode: what `apt-get install` gets to
                    reinstall randomd after the purge test (default
                    `randomd`: autopkgtest keeps its package in an apt source).
  RANDOMD_TESTBED_CACHE, RANDOMD_TESTBED_PREFIX   see packaging/testbed.
"""

import contextlib
import fcntl
import importlib.machinery
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_testbed_module():
    # packaging/testbed is a script without a .py suffix: load it by path.
    path = REPO / "packaging" / "testbed"
    loader = importlib.machinery.SourceFileLoader("randomd_testbed", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


tb = _load_testbed_module()


class CommandFailed(subprocess.CalledProcessError):
    """A command inside the container exited non-zero; the message shows its output."""

    def __str__(self):
        return f"{super().__str__()}\n--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"


class Testbed:
    """A running container, as the tests see it.

    Attributes:
      name      the machine name: `busctl -M NAME`, `systemctl -M NAME` work from the host
      root      the container's / as the host reaches it (/proc/LEADER/root)
      leader    host pid of the container's PID 1
      user      an unprivileged user that exists inside (randomd-test)
      packages  paths inside of the .debs that were installed (to reinstall after a purge)
      suite     the Debian release it was made of: "bookworm" or "trixie"
      bus       the system bus it was booted with: "dbus-daemon" or "dbus-broker"
    """

    user = tb.TEST_USER

    def __init__(self, state, debs, suite, bus):
        self.name = state["name"]
        self.root = Path(state["root"])
        self.leader = state["leader"]
        self.packages = [f"{tb.PKG_MOUNT}/{deb.name}" for deb in debs]
        self.suite = suite
        self.bus = bus

    def argv(self, cmd, user=None, env=None):
        """The host argv that runs cmd (a list) inside, as root or as `user`."""
        return tb.nsenter_argv(self.leader, cmd, user=user, env=env)

    def run(self, cmd, user=None, check=True, timeout=60.0, input=None, env=None):
        """Run cmd inside the container and return a CompletedProcess (text stdout/stderr).

        cmd: an argv list, or a string for `sh -c`. user: run as that user
        (via runuser) instead of root. env: extra variables; the host's
        environment is never passed in. check: raise CommandFailed on a
        non-zero exit. timeout: seconds; on expiry everything the command
        started is killed and subprocess.TimeoutExpired raised.
        """
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        argv = self.argv(cmd, user=user, env=env)
        # Its own process group: nsenter forks into the container's pid
        # namespace, so killing nsenter alone on timeout would leave the
        # command running inside (and in local mode, runuser's child).
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr) from None
        result = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
        if check and result.returncode != 0:
            raise CommandFailed(result.returncode, cmd, stdout, stderr)
        return result

    def systemctl(self, *args, check=True, timeout=60.0):
        """`systemctl ARGS` inside, as root."""
        return self.run(["systemctl", *args], check=check, timeout=timeout)

    def journal(self, unit=None, *args):
        """The journal entries of `unit` (all if None) as dicts, oldest first.

        Each dict is one `journalctl -o json` record: MESSAGE, PRIORITY,
        _SYSTEMD_UNIT, the sender's own fields, ... Extra journalctl options
        (e.g. "--since=-10s", "-b") go in args. The journal is written
        asynchronously: use wait_for() to wait for an entry.
        """
        cmd = ["journalctl", "--no-pager", "-o", "json", *args]
        if unit is not None:
            cmd += ["--unit", unit]
        out = self.run(cmd).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def write_file(self, path, text, mode=0o644):
        """Write text to path inside (owned by root), creating parent dirs."""
        script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
        self.run(["sh", "-c", script, "sh", path, f"{mode:o}"], input=text)

    def read_file(self, path):
        return self.run(["cat", path]).stdout

    def os_release(self):
        """/etc/os-release inside, as a dict (VERSION_CODENAME, VERSION_ID, ...)."""
        text = self.read_file("/etc/os-release")
        pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
        return {k: v.strip().strip('"') for k, v in pairs}

    def system_bus_daemons(self):
        """The names of the processes, other than PID 1, holding the listening system bus socket.

        `busctl status org.freedesktop.DBus` shows PID 1 under both buses (systemd
        holds the socket of dbus.socket and passes it on): the process that
        serves the socket tells dbus-daemon from dbus-broker.
        """
        out = self.run(["/usr/bin/python3", "-c", BUS_DAEMONS_SCRIPT]).stdout
        return sorted(set(out.split()))

    def wait_for(self, condition, timeout=10.0, what=None, user=None):
        """Poll until condition holds, every 0.1 s for at most `timeout` seconds.

        condition: a callable (holds when it returns a truthy value, which is
        returned), or a command (list or string; holds when it exits 0, and its
        CompletedProcess is returned; run as `user` if given). Raises
        TimeoutError naming `what` and showing the last command's output.
        """
        last = None

        def holds():
            nonlocal last
            if callable(condition):
                return condition()
            last = self.run(condition, user=user, check=False, timeout=timeout)
            return last if last.returncode == 0 else None

        try:
            return tb.deadline_wait(holds, timeout, what or repr(condition))
        except tb.TestbedError as e:
            detail = f"\nlast run: {last}" if last is not None else ""
            raise TimeoutError(f"{e}{detail}") from None


# Run inside: the comm of every process but PID 1 with an fd on the
# listening socket bound to /run/dbus/system_bus_socket (from /proc/net/unix:
# flags 00010000 is __SO_ACCEPTCON, a listening socket).
BUS_DAEMONS_SCRIPT = """
import os
inodes = set()
with open("/proc/net/unix") as f:
    next(f)
    for line in f:
        fields = line.split()
        if len(fields) < 8 or fields[3] != "00010000":
            continue
        if fields[7] == "/run/dbus/system_bus_socket":
            inodes.add(f"socket:[{fields[6]}]")
for pid in filter(str.isdigit, os.listdir("/proc")):
    if pid == "1":
        continue
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
            print(open(f"/proc/{pid}/comm").read().strip())
    except OSError:
        pass
"""


def _local_bus():
    """The bus this machine runs (local mode): the one whose unit is active."""
    r = subprocess.run(
        ["systemctl", "is-active", "--quiet", "dbus-broker.service"], check=False
    )
    return "dbus-broker" if r.returncode == 0 else "dbus-daemon"


class LocalTestbed(Testbed):
    """This machine itself, booted with systemd and randomd installed (RANDOMD_TESTBED=local).

    The same interface as the container: commands run directly, as root or
    as `user` (runuser), in the same clean environment. `root` is /, `leader`
    is 1, `name` the host name; `packages` are apt package names (or .deb
    paths) to reinstall randomd with after a purge.
    """

    def __init__(self, packages):
        self.name = socket.gethostname()
        self.root = Path("/")
        self.leader = 1
        self.packages = packages
        self.suite = self.os_release().get("VERSION_CODENAME", "")
        self.bus = _local_bus()

    def argv(self, cmd, user=None, env=None):
        argv = ["env", "-i", *(f"{k}={v}" for k, v in {**tb.CONTAINER_ENV, **(env or {})}.items())]
        if user is not None:
            argv += ["runuser", "-u", user, "--"]
        return argv + list(cmd)


def _local_problem():
    """Why this machine cannot be the test bed in local mode, or None."""
    if os.geteuid() != 0:
        return "RANDOMD_TESTBED=local needs root"
    if not Path("/run/systemd/system").is_dir():
        return "RANDOMD_TESTBED=local needs a machine booted with systemd (PID 1)"
    for tool in ("runuser", "useradd", "systemctl", "busctl", "journalctl"):
        if shutil.which(tool, path=tb.CONTAINER_ENV["PATH"]) is None:
            return f"RANDOMD_TESTBED=local: {tool} is missing"
    return None


def _local_testbed():
    """The session's LocalTestbed; creates the test user, and removes it again if it did."""
    problem = _local_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    packages = os.environ.get("RANDOMD_TESTBED_PACKAGES", "randomd").split()
    bed = LocalTestbed(packages)
    created = bed.run(["id", "-u", bed.user], check=False).returncode != 0
    if created:
        bed.run(["useradd", "--create-home", "--shell", "/bin/bash", bed.user])
    try:
        yield bed
    finally:
        if created:
            # Its processes first (systemd-run units of a failed test).
            bed.run(["pkill", "-KILL", "-u", bed.user], check=False)
            bed.run(["userdel", "--remove", bed.user], check=False)


def _debs_to_install():
    """The .debs to install, from RANDOMD_DEB_DIR; fail when there are none."""
    setting = os.environ.get("RANDOMD_DEB_DIR", "build/deb")
    if setting == "none":
        return []
    folder = REPO / setting  # an absolute setting replaces REPO
    debs = sorted(folder.glob("*.deb"))
    if not debs:
        pytest.fail(
            f"no .deb in {folder}: run packaging/build-deb first, or point RANDOMD_DEB_DIR at a "
            "folder of .debs (RANDOMD_DEB_DIR=none boots the bare image for tests that do not "
            "need randomd)",
            pytrace=False,
        )
    return debs


# The release before this one, for the upgrade tests: the tag, or the commit
# it names should the tag be missing from this clone.
PREVIOUS_TAG = "v0.1.0"
PREVIOUS_COMMIT = "24bc089"


def _git(*args):
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


def previous_release_commit():
    """The full commit id of the previous release (PREVIOUS_TAG, else PREVIOUS_COMMIT)."""
    for rev in (PREVIOUS_TAG, PREVIOUS_COMMIT):
        r = _git("rev-parse", "-q", "--verify", f"{rev}^{{commit}}")
        if r.returncode == 0:
            return r.stdout.strip()
    pytest.fail(
        f"neither {PREVIOUS_TAG} nor commit {PREVIOUS_COMMIT} is in this clone "
        "(the upgrade tests build the previous release from it): git fetch --tags",
        pytrace=False,
    )


def previous_release_debs():
    """The .debs of the previous release, built with its own packaging/build-deb.

    From `git archive` of its commit, once: they are cached by commit id in
    the test bed's cache (releases/COMMIT/), so later runs take a second.
    """
    commit = previous_release_commit()
    cached = tb.cache_dir() / "releases" / commit
    debs = sorted(cached.glob("*.deb"))
    if debs:
        return debs
    cached.parent.mkdir(parents=True, exist_ok=True)
    with open(cached.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; later ones find it
        if not cached.is_dir():
            _build_release(commit, cached)
    return sorted(cached.glob("*.deb"))


def _build_release(commit, dest):
    with tempfile.TemporaryDirectory(prefix="randomd-release-", dir="/var/tmp") as tmp:
        src, out = Path(tmp, "src"), Path(tmp, "out")
        src.mkdir()
        archive = subprocess.run(
            f"git -C {shlex.quote(str(REPO))} archive {commit} | tar -x -C {shlex.quote(str(src))}",
            shell=True,
            capture_output=True,
            text=True,
        )
        if archive.returncode != 0:
            pytest.fail(f"git archive {commit} failed:\n{archive.stderr}", pytrace=False)
        build = subprocess.run(
            [str(src / "packaging" / "build-deb"), str(out)], capture_output=True, text=True
        )
        if build.returncode != 0 or not list(out.glob("*.deb")):
            pytest.fail(
                f"the build of the previous release ({commit[:7]}) failed:\n"
                f"{build.stdout[-3000:]}{build.stderr[-3000:]}",
                pytrace=False,
            )
        partial = dest.with_name(f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        for deb in out.glob("*.deb"):
            shutil.copy2(deb, partial / deb.name)
        os.rename(partial, dest)


@pytest.fixture(scope="session")
def new_debs():
    """The .debs under test (RANDOMD_DEB_DIR); fails when there are none."""
    debs = _debs_to_install()
    if not debs:
        pytest.fail("these tests need the .debs under test: RANDOMD_DEB_DIR=none", pytrace=False)
    return debs


@pytest.fixture(scope="session")
def old_debs():
    """The previous release's .debs (built once and cached, see previous_release_debs)."""
    return previous_release_debs()


@pytest.fixture(scope="session")
def container():
    """booted, for tests that need a container of their own (see booted())."""
    return booted


def _interrupt_on_sigterm(_signum, _frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def booted(debs=(), pkgs=(), spec=None):
    """A container booted from spec's image (default: the environment's), as a Testbed.

    debs are installed, pkgs only put in /srv/pkgs (packaging/testbed up). Always
    torn down at the end, also on SIGTERM (a CI timeout). Fails the test with
    a message when the host cannot run containers or the container does not
    come up: never a skip.
    """
    problem = tb.host_problem()
    if problem:  # fail, not skip: a bed that cannot run must not pass as green
        pytest.fail(problem, pytrace=False)
    try:
        spec = spec or tb.boot_spec()
    except tb.TestbedError as e:
        pytest.fail(str(e), pytrace=False)
    # RANDOMD_TESTBED_PREFIX is set by `packaging/testbed run-tests`, which
    # removes what is left under that prefix should this process be killed.
    prefix = os.environ.get("RANDOMD_TESTBED_PREFIX", f"rtb{os.getpid()}")
    name = f"{prefix}-{secrets.token_hex(3)}"
    # pytest tears fixtures down on Ctrl-C; make SIGTERM do the same.
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        try:
            image = tb.build_image(spec, install_tools=False)
            state = tb.up(name, debs, image=image, pkgs=pkgs)
        except tb.TestbedError as e:
            state, problem = None, str(e)
        if state is None:  # outside the except: no "during handling" repetition
            pytest.fail(f"the test bed did not come up: {problem}", pytrace=False)
        bus = "dbus-broker" if spec.flavour in ("dbus-broker", "broker-only") else "dbus-daemon"
        yield Testbed(state, debs, spec.suite, bus)
    finally:
        tb.down(name)
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def testbed():
    """One container for the whole session, always torn down at the end.

    With RANDOMD_TESTBED=local, this machine instead (see LocalTestbed).
    """
    mode = os.environ.get("RANDOMD_TESTBED", "container")
    if mode == "local":
        yield from _local_testbed()
        return
    if mode != "container":
        pytest.fail(f"RANDOMD_TESTBED must be 'container' or 'local', not {mode!r}", pytrace=False)
    with booted(_debs_to_install()) as bed:
        yield bed


@pytest.fixture(scope="session")
def testbed_module():
    """packaging/testbed as a module: image specs (broker_only_spec, boot_spec) and the rest."""
    return tb
