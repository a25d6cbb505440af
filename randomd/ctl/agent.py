"""A polkit authentication agent on randomctl's terminal, started as systemctl starts one.

Before a call that may need a password, randomctl runs `pkttyagent
--notify-fd N --fallback` (systemd's src/shared/polkit-agent.c does the
same): the agent prompts on the terminal and closes N once it is registered
with polkitd, and randomctl waits for that before it calls.  root is never
asked by randomd, and without a terminal nobody could answer, so neither
starts one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys

PKTTYAGENT = "pkttyagent"
# How long the agent may take to register; past that randomctl goes on
# without it (polkit then refuses what needs a password).
REGISTER_TIMEOUT = 10.0


class Agent:
    """The pkttyagent randomctl started, or why it has none (``problem``)."""

    def __init__(self, process: asyncio.subprocess.Process | None, problem: str | None,
                 messages: int | None = None) -> None:
        self._process = process
        self._messages = messages  # the agent's stderr, passed on to ours
        self.problem = problem

    @classmethod
    async def start(cls, address: str | None = None) -> Agent:
        """Start pkttyagent on this terminal and wait until it has registered.

        *address* is the bus randomctl talks to (--address), where polkitd is
        then asked too; by default the agent registers on the system bus.
        """
        path = shutil.which(PKTTYAGENT)
        if path is None:
            return cls(None, "pkttyagent is not installed (package polkitd)")
        ready, notify = os.pipe2(os.O_CLOEXEC)
        # pkttyagent prompts on /dev/tty; on stderr it says why it could not
        # register, before it exits and so before `ready` sees the end.
        messages, errors = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address} if address else None
        try:
            process = await asyncio.create_subprocess_exec(
                path, "--notify-fd", str(notify), "--fallback", pass_fds=(notify,),
                stdout=asyncio.subprocess.DEVNULL, stderr=errors, env=env,
                preexec_fn=_die_with_parent)
        except OSError as error:
            os.close(ready)
            os.close(messages)
            return cls(None, f"pkttyagent could not be started: {error.strerror}")
        finally:
            os.close(notify)
            os.close(errors)
        agent = cls(process, None, messages)
        try:
            registered = await asyncio.wait_for(_closed(ready), REGISTER_TIMEOUT)
        except TimeoutError:
            registered = False
        finally:
            os.close(ready)
        complaint = _read_pending(messages).strip()
        if registered and not complaint:
            asyncio.get_running_loop().add_reader(messages, _pass_on, messages)
            return agent
        await agent.stop()
        reason = complaint.splitlines()[-1] if complaint else "it did not register in time"
        agent.problem = f"pkttyagent could not start: {reason}"
        return agent

    async def stop(self) -> None:
        """End the agent (it has answered whatever it was asked by now)."""
        process, self._process = self._process, None
        if process is not None:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            await process.wait()
        if self._messages is not None:
            asyncio.get_running_loop().remove_reader(self._messages)
            _pass_on(self._messages)
            os.close(self._messages)
            self._messages = None


def wanted(interactive: bool) -> bool:
    """Whether a call may need an agent: interactive, not root, on a terminal."""
    return interactive and os.geteuid() != 0 and sys.stdin.isatty()


async def _closed(fd: int) -> bool:
    """Wait until the writing end of the pipe *fd* is closed; True unless data came."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(fd, readable.set_result, None)
    try:
        await readable
    finally:
        loop.remove_reader(fd)
    return os.read(fd, 1) == b""


def _read_pending(fd: int) -> str:
    """What the non-blocking pipe *fd* holds now."""
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _pass_on(fd: int) -> None:
    """Copy the agent's messages to randomctl's stderr."""
    if text := _read_pending(fd):
        sys.stderr.write(text)
        sys.stderr.flush()


def _die_with_parent() -> None:
    """In the child: end with randomctl, even if randomctl is killed (PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
