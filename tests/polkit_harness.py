"""Real polkit for the integration tests: polkitd, an authentication agent, other users' clients.

- Polkitd: /usr/lib/polkit-1/polkitd on a private SystemBus, in a mount
  namespace of its own where the project's actions file and the test's
  rules.d files are bound over the compiled-in directories (the host's files
  are untouched).  The bus must include /usr/share/dbus-1/system.d so that
  polkitd may own org.freedesktop.PolicyKit1 (see policy_bus()).
- Agent: a polkit authentication agent for one process, as a desktop runs
  one for a session.  It lets a test hold a check pending inside the real
  polkitd ("waiting for a password") and authenticate or dismiss it.  It runs
  in the test process, as root, because polkitd takes
  AuthenticationAgentResponse from uid 0 only (as from its setuid helper).
- UserClient: a bus connection of another user, in a subprocess run as that
  user and driven over pipes; it reports D-Bus error names exactly and can
  keep calls and jobs open.  The client is tests/integration/peers/user_client.py.
"""

from __future__ import annotations

import asyncio
import grp
import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness

from randomd import dbus

POLKITD = Path("/usr/lib/polkit-1/polkitd")
ACTIONS = harness.REPO / "conf/polkit-1/actions"
SYSTEM_POLICIES = Path("/usr/share/dbus-1/system.d")
AUTHORITY = dict(destination="org.freedesktop.PolicyKit1",
                 path="/org/freedesktop/PolicyKit1/Authority",
                 interface="org.freedesktop.PolicyKit1.Authority")
POLKIT_NAME = AUTHORITY["destination"]
RANDOMD = dict(destination="org.randomd.Random1", path="/org/randomd/Random1",
               interface="org.randomd.Random1")
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
INTERACTIVE_REQUIRED = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
# Not D-Bus errors: what a UserClient reports when it could not get a reply
# (the second, as peers/user_client.py reports it).
CLIENT_EXITED = "test.ClientExited"
CLIENT_FAILED = "test.ClientFailed"
USER_CLIENT = harness.REPO / "tests/integration/peers/user_client.py"


def policy_bus() -> harness.SystemBus:
    """A system-like bus with randomd's policy and the host's system.d (polkitd's)."""
    return harness.SystemBus(includedirs=[SYSTEM_POLICIES])


def ensure_group_member(group: str, user: str) -> None:
    """Make *user* a member of the system group *group*, creating it if missing."""
    try:
        members = grp.getgrnam(group).gr_mem
    except KeyError:
        subprocess.run(["groupadd", "--system", group], check=True)
        members = []
    if user not in members:
        subprocess.run(["gpasswd", "--add", user, group], check=True, capture_output=True)


def name_has_owner(bus: harness.SystemBus, name: str) -> bool:
    """Whether *name* is owned on *bus* (asked with busctl, so usable anywhere)."""
    result = harness.busctl(bus, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "NameHasOwner", "s", name, check=True)
    return result.stdout.strip() == "b true"


# -- polkitd ---------------------------------------------------------------


class Polkitd:
    """A real polkitd on *bus* with the project's actions and the given rules.d files."""

    def __init__(self, bus: harness.SystemBus, rules: Mapping[str, str] | None = None) -> None:
        _require_polkitd()
        self.bus = bus
        self.dir = harness.public_tempdir("randomd-polkitd-")
        self.actions = self._public_dir("actions")
        self.rules = self._public_dir("rules.d")
        for policy in ACTIONS.glob("*.policy"):
            self._public_file(self.actions / policy.name, policy.read_text())
        for name, text in (rules or {}).items():
            self._public_file(self.rules / name, text)
        self.log = self.dir / "polkitd.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Polkitd:
        """Start polkitd and return once it owns its name (bounded)."""
        script = (f"mount --bind {self.actions} /usr/share/polkit-1/actions && "
                  f"mount --bind {self.rules} /etc/polkit-1/rules.d && exec {POLKITD}")
        with self.log.open("ab") as log:
            # unshare and sh exec: the pid is polkitd's, for signals.
            self.process = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                env=self.bus.env(), stdout=log, stderr=log)
        try:
            harness.wait_for(self._owns_name, what=f"polkitd to own {POLKIT_NAME}")
        except AssertionError as error:
            raise AssertionError(f"{error}; polkitd's output:\n{self.output()}") from None
        return self

    def stop(self) -> None:
        """Stop polkitd and return once its name is free."""
        if self.process is None:
            return
        self.resume()
        self.process.terminate()
        self.process.wait(harness.TIMEOUT)
        self.process = None
        harness.wait_for(lambda: not name_has_owner(self.bus, POLKIT_NAME),
                         what=f"{POLKIT_NAME} to be released")

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze polkitd: it keeps its name but answers nothing (a hung authority)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _owns_name(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"polkitd exited with status {self.process.returncode}; "
                                 f"its output:\n{self.output()}")
        return name_has_owner(self.bus, POLKIT_NAME)

    def _public_dir(self, name: str) -> Path:
        # polkitd drops to the polkitd user before it reads these.
        path = self.dir / name
        path.mkdir(mode=0o755)
        path.chmod(0o755)
        return path

    @staticmethod
    def _public_file(path: Path, text: str) -> None:
        path.write_text(text)
        path.chmod(0o644)


def _require_polkitd() -> None:
    """Fail (never skip) with what is missing to run a real polkitd here."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (to bind-mount polkit's directories in a private namespace)")
    if not os.access(POLKITD, os.X_OK):
        missing.append(f"{POLKITD} (apt-get install polkitd)")
    if shutil.which("unshare") is None:
        missing.append("unshare (util-linux)")
    if not list(ACTIONS.glob("*.policy")):
        missing.append(f"a polkit actions file in {ACTIONS}")
    if missing:
        raise AssertionError("cannot run a real polkitd: missing " + "; ".join(missing))


# -- an authentication agent -----------------------------------------------


@dataclass
class AuthenticationRequest:
    """One BeginAuthentication from polkitd, waiting for the agent's reply."""

    action_id: str
    cookie: str
    identities: list[Any]
    message: Any = field(repr=False)


class Agent:
    """A polkit authentication agent registered for one process, on a root connection."""

    PATH = "/org/randomd/test/AuthenticationAgent"
    INTERFACE = "org.freedesktop.PolicyKit1.AuthenticationAgent"

    def __init__(self, bus: dbus.Bus) -> None:
        self._bus = bus
        self.requests: asyncio.Queue[AuthenticationRequest] = asyncio.Queue()
        self.cancelled: set[str] = set()
        self._cancel_seen = asyncio.Event()
        self._open: dict[str, AuthenticationRequest] = {}
        bus.add_message_handler(self._on_message)

    async def register_for(self, pid: int) -> None:
        """Become the agent polkitd asks when it needs a password for process *pid*."""
        subject = ["unix-process", {"pid": dbus.Variant("u", pid),
                                    "start-time": dbus.Variant("t", 0)}]  # 0: polkitd finds it
        await dbus.call(self._bus, dbus.Message(
            **AUTHORITY, member="RegisterAuthenticationAgent", signature="(sa{sv})ss",
            body=[subject, "C", self.PATH]), harness.TIMEOUT)

    async def next_request(self, timeout: float = harness.TIMEOUT) -> AuthenticationRequest:
        """The next password request polkitd made of this agent."""
        try:
            return await asyncio.wait_for(self.requests.get(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"polkitd asked the agent for no password in {timeout} s") from None

    async def wait_cancelled(self, cookie: str, timeout: float = harness.TIMEOUT) -> None:
        """Return once polkitd told the agent to cancel the request *cookie*."""
        async def seen() -> None:
            while cookie not in self.cancelled:
                self._cancel_seen.clear()
                await self._cancel_seen.wait()
        try:
            await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"polkitd did not cancel authentication {cookie} in {timeout} s") from None

    async def authenticate(self, request: AuthenticationRequest) -> None:
        """Answer *request* as if its user typed the right password.

        With the original AuthenticationAgentResponse, which names no uid: the
        uid of AuthenticationAgentResponse2 must be the agent's, which polkitd
        122 (Debian 12) takes from the caller that registered it (root here)
        and polkitd 126 (Debian 13) from the subject it was registered for
        (the test user); with any other, "No session for cookie".
        """
        identity = request.identities[0]
        await dbus.call(self._bus, dbus.Message(
            **AUTHORITY, member="AuthenticationAgentResponse", signature="s(sa{sv})",
            body=[request.cookie, identity]), harness.TIMEOUT)
        self._answer(request)

    def dismiss(self, request: AuthenticationRequest) -> None:
        """Answer *request* as if its user closed the password dialog."""
        self._answer(request, "org.freedesktop.PolicyKit1.Error.Cancelled",
                     "The user dismissed the dialog.")

    def _answer(self, request: AuthenticationRequest, error: str | None = None,
                text: str = "") -> None:
        if self._open.pop(request.cookie, None) is None:
            return
        reply = (dbus.Message.new_error(request.message, error, text) if error
                 else dbus.Message.new_method_return(request.message))
        self._bus.send(reply)

    def _on_message(self, msg: Any) -> bool:
        if (msg.message_type != dbus.MessageType.METHOD_CALL or msg.path != self.PATH
                or msg.interface != self.INTERFACE):
            return False
        if msg.member == "BeginAuthentication":
            action_id, _message, _icon, _details, cookie, identities = msg.body
            request = AuthenticationRequest(action_id, cookie, identities, msg)
            self._open[cookie] = request
            self.requests.put_nowait(request)
        elif msg.member == "CancelAuthentication":
            (cookie,) = msg.body
            self.cancelled.add(cookie)
            self._cancel_seen.set()
            self._bus.send(dbus.Message.new_method_return(msg))
            request = self._open.get(cookie)
            if request is not None:  # as a real agent: the dialog closes, unanswered
                self.dismiss(request)
        return True


# -- watching the wire ---------------------------------------------------


@dataclass
class SeenCall:
    """A method call to polkit's Authority, as a bus monitor saw it."""

    sender: str
    member: str
    body: list[Any]


class AuthorityMonitor:
    """Sees every call to polkit's Authority on a bus, as dbus-monitor would (root only)."""

    def __init__(self, bus: dbus.Bus) -> None:
        self._bus = bus
        self.calls: list[SeenCall] = []
        self._seen = asyncio.Event()
        bus.add_message_handler(self._on_message)

    @classmethod
    async def start(cls, connection: dbus.Bus) -> AuthorityMonitor:
        """Turn *connection* (root, used for nothing else) into a monitor."""
        monitor = cls(connection)
        rule = f"type='method_call',interface='{AUTHORITY['interface']}'"
        await dbus.call(connection, dbus.Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus.Monitoring", member="BecomeMonitor",
            signature="asu", body=[[rule], 0]), harness.TIMEOUT)
        return monitor

    async def wait_for(self, sender: str, member: str, check: Any = lambda body: True,
                       timeout: float = harness.TIMEOUT) -> SeenCall:
        """The first call of *member* by *sender* whose body passes *check*."""
        async def seen() -> SeenCall:
            while True:
                for call in self.calls:
                    if (call.sender, call.member) == (sender, member) and check(call.body):
                        return call
                self._seen.clear()
                await self._seen.wait()
        try:
            return await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise AssertionError(f"{sender} did not call {member} in {timeout} s; "
                                 f"seen: {self.calls}") from None

    def _on_message(self, msg: Any) -> bool:
        if msg.reply_serial:  # the answer to BecomeMonitor
            return False
        if msg.interface == AUTHORITY["interface"] and msg.path == AUTHORITY["path"]:
            self.calls.append(SeenCall(msg.sender, msg.member, list(msg.body)))
            self._seen.set()
        return True  # a monitor never answers anything


# -- other users' clients --------------------------------------------------


@dataclass
class Reply:
    """A method reply as a UserClient saw it: a body, or an error name and its text."""

    body: list[Any]
    error: str | None = None
    text: str = ""


class UserClient:
    """One bus connection of *user*, in a subprocess; calls are sent over a pipe."""

    def __init__(self, process: asyncio.subprocess.Process, unique_name: str, pid: int) -> None:
        self.process = process
        self.unique_name = unique_name
        self.pid = pid
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[Reply]] = {}
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, bus: harness.SystemBus, user: str) -> UserClient:
        """Connect as *user* to *bus*; return once connected."""
        argv = harness.as_user(user, [harness.PYTHON, str(USER_CLIENT), bus.address])
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(harness.REPO)}
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/")
        try:
            line = await asyncio.wait_for(process.stdout.readline(), harness.TIMEOUT)
        except TimeoutError:
            process.kill()
            raise AssertionError(
                f"the client of {user} did not connect in {harness.TIMEOUT} s") from None
        if not line:
            raise AssertionError(f"the client of {user} exited: status {await process.wait()}")
        hello = json.loads(line)
        return cls(process, hello["unique_name"], hello["pid"])

    def send(self, member: str, signature: str = "", body: Sequence[Any] = (), *,
             interactive: bool = False, path: str = RANDOMD["path"],
             interface: str = RANDOMD["interface"], variant: str = "") -> asyncio.Future[Reply]:
        """Send a call to randomd; the future resolves to its Reply.

        *variant*: the signature of the last argument, sent as a variant.
        """
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        request = dict(id=request_id, member=member, signature=signature, body=list(body),
                       interactive=interactive, path=path, interface=interface, variant=variant)
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        return future

    async def call(self, member: str, signature: str = "", body: Sequence[Any] = (),
                   **kwargs: Any) -> Reply:
        """Call randomd and return the Reply (bounded)."""
        return await reply_of(self.send(member, signature, body, **kwargs))

    def send_set(self, name: str, signature: str, value: Any, *,
                 interactive: bool = False) -> asyncio.Future[Reply]:
        """Write a manager property with org.freedesktop.DBus.Properties.Set."""
        return self.send("Set", "ssv", [RANDOMD["interface"], name, value],
                         interface="org.freedesktop.DBus.Properties", variant=signature,
                         interactive=interactive)

    async def kill(self) -> None:
        """Drop the connection abruptly, as a crashing client does."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    async def close(self) -> None:
        """Disconnect politely (EOF on its stdin); kill it if it lingers."""
        if self.process.returncode is None:
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), harness.TIMEOUT)
            except TimeoutError:
                await self.kill()
        self._reader.cancel()

    async def _read(self) -> None:
        while line := await self.process.stdout.readline():
            answer = json.loads(line)
            future = self._replies.pop(answer["id"])
            if not future.done():
                future.set_result(Reply(answer.get("body", []), answer.get("error"),
                                        answer.get("text", "")))
        for future in self._replies.values():
            if not future.done():
                future.set_result(Reply([], CLIENT_EXITED, "the client exited before the reply"))


async def reply_of(future: asyncio.Future[Reply], timeout: float = harness.TIMEOUT) -> Reply:
    """The Reply a UserClient call will get; fail after *timeout*."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        raise AssertionError(f"no reply from randomd in {timeout} s") from None
