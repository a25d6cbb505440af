"""randomd, the daemon: connect, own the name, serve until told to stop.

Exit status: 0 after SIGTERM/SIGINT or an idle exit, 1 when the bus is lost
or the name cannot be owned, 78 (EX_CONFIG) for a bad configuration file or
a bus library randomd does not know.
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

from . import __version__, api, logs, notify, options
from .callers import CallerRegistry
from .dbus import Bus, DBusError, NameFlag, RequestNameReply, UnsupportedLibrary, connect
from .dbus.tree import ObjectTree
from .errors import ConfigError
from .job_object import JobPublisher, no_such_job
from .jobs import JobManager
from .manager import Manager
from .polkit import Authority
from .settings import Settings

log = logging.getLogger("randomd")

EX_CONFIG = 78


def main(argv: list[str] | None = None) -> int:
    """Entry point of the randomd command."""
    try:
        args = options.parse(sys.argv[1:] if argv is None else argv)
    except options.Exit as exit_:
        print(exit_.text, end="", file=sys.stdout if exit_.status == 0 else sys.stderr)
        return exit_.status
    try:
        settings = Settings.load(args.config, log_level=args.log_level)
    except ConfigError as error:
        print(f"randomd: {error}", file=sys.stderr)
        return EX_CONFIG
    logs.setup(settings.log_level)
    return asyncio.run(Daemon(args, settings).run())


class Daemon:
    """One run of the service, from connecting to exiting."""

    def __init__(self, args: options.Options, settings: Settings) -> None:
        self._args = args
        self._settings = settings
        self._stop = asyncio.Event()

    async def run(self) -> int:
        try:
            bus = await connect(self._args.address, system=self._args.bus != "session")
        except UnsupportedLibrary as error:  # restarting cannot help: as for a bad config
            print(f"randomd: {error}", file=sys.stderr)
            return EX_CONFIG
        except Exception as error:  # no socket, refused, bad address, auth
            print(f"randomd: cannot connect to the bus: {error}", file=sys.stderr)
            return 1
        await self._serve_objects(bus)
        if not await self._own_name(bus):
            return 1
        self._install_signal_handlers()
        notify.ready(self._status.text())
        log.info("randomd %s serving %s on %s", __version__, api.BUS_NAME, bus.unique_name)
        if await self._wait_until_done(bus):
            await self._jobs.shutdown()  # nobody can hear of them now: end them quietly
            return 1
        return 0 if await self._shutdown(bus) else 1

    async def _serve_objects(self, bus: Bus) -> None:
        """Build the layers bottom up; each listener subscribes as it is made."""
        self._callers = CallerRegistry(bus)
        await self._callers.start()
        self._tree = ObjectTree(bus, api.MANAGER_PATH, no_object=no_such_job)
        authority = Authority(bus, self._callers)
        self._jobs = JobManager(self._settings)
        self._callers.on_gone(self._jobs.owner_gone)
        # The publisher first: a job's object exists before the counters announce it.
        JobPublisher(self._tree, self._callers, self._jobs, authority)
        self._manager = Manager(self._settings, self._tree, self._jobs, authority)
        self._status = notify.Status(self._jobs, self._settings)
        self._tree.export(api.MANAGER_PATH, self._manager)

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
        background: list[asyncio.Future[object]] = [asyncio.ensure_future(self._stop.wait())]
        if (interval := notify.watchdog_interval()) is not None:
            background.append(asyncio.ensure_future(notify.keep_watchdog_fed(interval)))
        if self._settings.current.idle_exit_sec > 0:
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
        idle_exit_sec = self._settings.current.idle_exit_sec
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
        with contextlib.suppress(DBusError, TimeoutError):
            await asyncio.wait_for(bus.release_name(api.BUS_NAME), 5)
        bus.disconnect()
        return True

    def _on_sighup(self) -> None:
        with contextlib.suppress(ConfigError):  # logged; SIGHUP has no one to answer
            self._settings.reload()
