"""randomd, the daemon: connect, own the name, serve until told to stop.

Exit status: 0 after SIGTERM/SIGINT or an idle exit, 1 when the bus is lost
or the name cannot be owned, 78 (EX_CONFIG) for a bad configuration file.
"""

from __future__ import annotations

from .imports import without

# randomd speaks D-Bus on AF_UNIX sockets only, but asyncio imports ssl (and
# OpenSSL) for TLS transports it could open: a tenth of randomd's imports.
with without("ssl"):
    import asyncio
import contextlib
import logging
import signal
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, api, config as configuration, logs, notify
from .bus import Bus, DBusError, NameFlag, RequestNameReply, connect
from .callers import CallerRegistry
from .config import Config
from .errors import ConfigError
from .job_object import JobPublisher, no_such_job
from .jobs import JobManager
from .manager import Manager
from .polkit import Authority
from .service import ObjectTree

if TYPE_CHECKING:
    import argparse

log = logging.getLogger("randomd")

EX_CONFIG = 78
STATUS_INTERVAL = 0.2


# The options _parse_usual reads: those with a value, and the bus choices.
_VALUED = {"--address": "address", "--config": "config", "--log-level": "log_level"}
_WHERE = {"--system": "system", "--session": "session"}


def parse_args(argv: list[str] | None) -> argparse.Namespace | types.SimpleNamespace:
    """The command line.  The usual options are read without argparse (its
    import is a few per cent of randomd's start-up); anything else, --help
    and every mistake go to argparse, which answers them as it always did."""
    usual = _parse_usual(sys.argv[1:] if argv is None else argv)
    return usual if usual is not None else _parse_with_argparse(argv)


def _parse_usual(argv: list[str]) -> types.SimpleNamespace | None:
    """What argparse would return for *argv*, if it is made of the usual
    options, each at most once and spelled out; else None."""
    values: dict = {"bus": None, "address": None, "config": configuration.DEFAULT_PATH,
                    "log_level": None}
    seen: set[str] = set()
    tokens = iter(argv)
    for token in tokens:
        if token in seen:
            return None
        seen.add(token)
        if token in _WHERE:
            values["bus"] = _WHERE[token]
        elif token in _VALUED:
            value = next(tokens, None)
            if value is None or value.startswith("-"):
                return None
            values[_VALUED[token]] = value
        else:
            return None
    if len(seen & {"--system", "--session", "--address"}) > 1:  # mutually exclusive
        return None
    if values["log_level"] is not None and values["log_level"] not in configuration.LOG_LEVELS:
        return None
    if "--config" in seen:
        values["config"] = Path(values["config"])
    return types.SimpleNamespace(**values)


def _parse_with_argparse(argv: list[str] | None) -> argparse.Namespace:
    import argparse

    parser = argparse.ArgumentParser(
        prog="randomd", description="Serve random numbers on the D-Bus system bus.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--system", dest="bus", action="store_const", const="system",
                       help="serve on the system bus (the default)")
    where.add_argument("--session", dest="bus", action="store_const", const="session",
                       help="serve on the session bus (for development)")
    where.add_argument("--address", metavar="ADDR", help="serve on the bus at this address")
    parser.add_argument("--config", metavar="PATH", type=Path, default=configuration.DEFAULT_PATH,
                        help=f"configuration file (default {configuration.DEFAULT_PATH})")
    parser.add_argument("--log-level", choices=configuration.LOG_LEVELS,
                        help="overrides LogLevel from the configuration file")
    parser.add_argument("--version", action="version", version=f"randomd {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the randomd command."""
    args = parse_args(argv)
    try:
        config = configuration.load(args.config)
    except ConfigError as error:
        print(f"randomd: {error}", file=sys.stderr)
        return EX_CONFIG
    logs.setup(args.log_level or config.log_level)
    return asyncio.run(Daemon(args, config).run())


class Daemon:
    """One run of the service, from connecting to exiting."""

    def __init__(self, args: argparse.Namespace, config: Config) -> None:
        self._args = args
        self._config = config
        self._stop = asyncio.Event()
        self._status_due = False

    async def run(self) -> int:
        try:
            bus = await connect(self._args.address, system=self._args.bus != "session")
        except Exception as error:  # no socket, refused, bad address, auth
            print(f"randomd: cannot connect to the bus: {error}", file=sys.stderr)
            return 1
        await self._serve_objects(bus)
        if not await self._own_name(bus):
            return 1
        self._install_signal_handlers()
        notify.ready(self._status())
        log.info("randomd %s serving %s on %s", __version__, api.BUS_NAME, bus.unique_name)
        if await self._wait_until_done(bus):
            await self._jobs.shutdown()  # nobody can hear of them now: end them quietly
            return 1
        return 0 if await self._shutdown(bus) else 1

    async def _serve_objects(self, bus: Bus) -> None:
        self._callers = CallerRegistry(bus)
        await self._callers.start()
        self._tree = ObjectTree(bus, api.MANAGER_PATH, no_object=no_such_job)
        authority = Authority(bus, self._callers)
        publisher = JobPublisher(self._tree, self._callers, self._jobs_changed)
        self._jobs = JobManager(self._config, publisher)
        publisher.jobs, publisher.authority = self._jobs, authority
        self._manager = Manager(self._config, self._tree, self._jobs, authority, self.reload)
        self._tree.export(api.MANAGER_PATH, self._manager)
        self._callers.on_gone(self._jobs.owner_gone)

    async def _own_name(self, bus: Bus) -> bool:
        try:
            reply = await bus.request_name(api.BUS_NAME, NameFlag.DO_NOT_QUEUE)
        except DBusError as error:
            print(f"randomd: not allowed to own {api.BUS_NAME}: {error.text}", file=sys.stderr)
            return False
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            print(f"randomd: {api.BUS_NAME} is already owned by another process", file=sys.stderr)
            return False
        return True

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    async def _wait_until_done(self, bus: Bus) -> bool:
        """Serve until stopped or idle (False) or until the bus is lost (True)."""
        background = [asyncio.ensure_future(self._stop.wait())]
        if (interval := notify.watchdog_interval()) is not None:
            background.append(asyncio.ensure_future(notify.keep_watchdog_fed(interval)))
        if self._config.idle_exit_sec > 0:
            background.append(asyncio.ensure_future(self._idle_exit()))
        disconnected = asyncio.ensure_future(bus.wait_for_disconnect())
        await asyncio.wait([disconnected, *background], return_when=asyncio.FIRST_COMPLETED)
        for task in background:
            task.cancel()
        if not disconnected.done():
            disconnected.cancel()
            return False
        error = disconnected.exception()
        log.error("lost the connection to the bus: %s",
                  (str(error) or type(error).__name__) if error else "closed by the bus")
        return True

    async def _idle_exit(self) -> None:
        """Return once no job exists, no call is being answered and none came for IdleExitSec.

        A call being answered may wait minutes for polkit (a password being
        typed) with no job in the table: exiting then would answer it
        ShuttingDown.  Its answer restarts the count.
        """
        loop = asyncio.get_running_loop()
        idle_exit_sec = self._config.idle_exit_sec
        while True:
            remaining = idle_exit_sec - (loop.time() - self._tree.last_call)
            busy = self._tree.calls_in_flight() or not self._jobs.idle()
            if remaining <= 0 and not busy:
                log.info("idle for %g s, exiting", idle_exit_sec)
                return
            # A timer, not a poll: it fires at most once per IdleExitSec.
            await asyncio.sleep(remaining if remaining > 0 else idle_exit_sec)

    async def _shutdown(self, bus: Bus) -> bool:
        """Fail running jobs, flush their Finished signals, then leave the bus.

        False if the bus was lost before everything was sent.
        """
        notify.stopping("Shutting down.")
        log.info("shutting down")
        await self._jobs.shutdown()
        await self._tree.cancel_calls()
        self._manager.flush_announcements()
        try:
            await bus.writer.drain()
        except OSError as error:
            log.error("lost the connection to the bus while stopping: %s", error)
            return False
        try:
            await asyncio.wait_for(bus.release_name(api.BUS_NAME), 5)
        except (DBusError, TimeoutError):
            pass
        bus.disconnect()
        return True

    def reload(self) -> None:
        """Re-read the configuration file; a broken one raises ConfigError and changes nothing."""
        notify.reloading()
        try:
            config = configuration.load(self._args.config)
        except ConfigError as error:
            log.error("reload failed, keeping the old configuration: %s", error)
            raise
        else:
            self._config = config
            self._manager.apply_config(config)
            logs.set_level(self._args.log_level or config.log_level)
            log.info("configuration reloaded from %s", self._args.config)
        finally:
            notify.ready(self._status())

    def _on_sighup(self) -> None:
        with contextlib.suppress(ConfigError):  # logged; SIGHUP has no one to answer
            self.reload()

    def _jobs_changed(self) -> None:
        self._manager.jobs_changed()
        # At most one STATUS= per STATUS_INTERVAL, however many jobs change.
        if not self._status_due:
            self._status_due = True
            asyncio.get_running_loop().call_later(STATUS_INTERVAL, self._send_status)

    def _send_status(self) -> None:
        self._status_due = False
        notify.status(self._status())

    def _status(self) -> str:
        return f"Serving; {self._jobs.active} jobs running, {self._jobs.started} started."
