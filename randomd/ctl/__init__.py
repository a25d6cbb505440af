"""randomctl: the command-line client of randomd.

It speaks only the public D-Bus API (design/API.md), through the client
library randomd.client: calls, timeouts, error mapping and jobs are the
library's.  Modules: cli (the command line), client (the library's errors
as randomctl's sentences and exit statuses), commands (the short commands),
follow (slow and wait), monitor, progress (the bar), output (text, tables,
JSON), exits (exit statuses).  The bus library and
asyncio are imported only once a command runs, so --help and --version stay
quick.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from .client import Client
    from .context import Context
    from .output import Output

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the randomctl command; returns the exit status."""
    from . import cli, exits
    from .output import Output

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = cli.parse(argv)
    except exits.CtlError as error:
        Output(cli.json_mode(argv)).error(error)
        return error.status
    try:
        from ..imports import without
        with without("ssl"):  # as in randomd: AF_UNIX only, no TLS
            import asyncio
        out = Output(args.json, quiet=args.quiet, legend=args.legend)
        return asyncio.run(_run(args, out))
    except KeyboardInterrupt:  # before the SIGINT handler was installed
        return exits.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (randomctl monitor | head): no traceback, no more output.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.FAILURE


async def _run(args: argparse.Namespace, out: Output) -> int:
    """Connect, run the command, and turn every failure into its exit status.

    Ctrl-C cancels the command's task; a command that must clean up (slow
    cancels its job) catches the CancelledError and sees ctx.interrupted.
    """
    import asyncio
    import signal

    from . import exits
    from .client import Client
    from .context import Context

    task = asyncio.current_task()
    assert task is not None
    ctx: Context | None = None
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        if ctx is not None:
            ctx.interrupted = True
        task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, on_sigint)
    # polkit may ask for a password only where someone can type it.
    interactive = args.ask_password and not out.as_json and sys.stdin.isatty()
    try:
        try:
            client = await Client.open(args.bus, args.address, interactive, args.timeout)
            ctx = Context(args, client, out, interrupted)
            try:
                async with _agent_for(args, interactive, client):
                    return await _command(args.command)(ctx)
            finally:
                await client.close()
        except asyncio.CancelledError:
            if not interrupted:
                raise
            raise exits.CtlError(exits.INTERRUPTED, "Interrupted.") from None
    except exits.CtlError as error:
        out.error(error)
        return error.status


# The commands whose calls may need a password (a polkit action).
_MAY_ASK = {"slow", "wait", "cancel", "cancel-all", "set-interval", "reload"}


@contextlib.asynccontextmanager
async def _agent_for(args: argparse.Namespace, interactive: bool,
                     client: Client) -> AsyncIterator[None]:
    """A pkttyagent on the terminal while a command that may need a password runs."""
    from . import agent

    if args.command not in _MAY_ASK or args.bus == "session" or not agent.wanted(interactive):
        yield  # polkit is on the system bus: randomd on a session bus asks nobody
        return
    started = await agent.Agent.start(args.address)
    client.agent_problem = started.problem
    try:
        yield
    finally:
        await started.stop()


def _command(name: str) -> Callable[[Context], Awaitable[int]]:
    """The coroutine function of a command, importing only its module."""
    if name in ("slow", "wait"):
        from . import follow
        return getattr(follow, name)
    if name == "monitor":
        from .monitor import monitor
        return monitor
    from . import commands
    return getattr(commands, {"bytes": "bytes_", "cancel-all": "cancel_all",
                              "set-interval": "set_interval"}.get(name, name))
