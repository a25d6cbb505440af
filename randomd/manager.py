"""The manager object, /org/randomd/Random1: quick numbers, bytes, slow jobs, limits.

Each method reads in the same order: validate the arguments, authorize, act,
announce (PropertiesChanged), reply.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Callable

from . import __version__, api, errors, limits, randomness
from .config import Config
from .errors import ConfigError
from .service import Call, Interface, dbus_property, method

if TYPE_CHECKING:
    from .jobs import JobManager
    from .polkit import Authority
    from .service import ObjectTree

log = logging.getLogger("randomd.manager")

# ActiveJobs and JobsStarted are announced at most this often: a burst of
# jobs starting or ending is one PropertiesChanged per interval (a broadcast,
# which the bus copies to every listener), with the latest values.
JOBS_ANNOUNCE_INTERVAL = 0.1


class Manager(Interface, name=api.MANAGER_INTERFACE):
    """org.randomd.Random1 on /org/randomd/Random1."""

    def __init__(self, config: Config, tree: ObjectTree, jobs: JobManager,
                 authority: Authority, reload: Callable[[], None]) -> None:
        self._config = config
        self._tree = tree
        self._jobs = jobs
        self._authority = authority
        self._reload = reload  # the daemon's: re-reads the file, then calls apply_config
        self.slow_bit_interval = config.slow_bit_interval
        self._jobs_announced = -JOBS_ANNOUNCE_INTERVAL  # loop time of the last announcement
        self._jobs_announcement: asyncio.TimerHandle | None = None

    # -- methods -------------------------------------------------------

    @method("u", "s", ("number",))
    def Quick(self, call: Call, bits: int) -> str:
        if not 1 <= bits <= self._config.max_quick_bits:
            limits.check_range("bits", bits, 1, self._config.max_quick_bits, "MaxQuickBits")
        return str(_random_integer(bits))

    @method("u", "ay", ("data",))
    def Bytes(self, call: Call, count: int) -> bytes:
        limits.check_range("count", count, 1, self._config.max_bytes, "MaxBytes")
        return randomness.random_bytes(count)

    @method("u", "o", ("job",))
    async def Slow(self, call: Call, bits: int) -> str:
        limits.check_range("bits", bits, 1, self._config.max_slow_bits, "MaxSlowBits")
        caller = await self._authority.authorize(call, api.ACTION_SLOW)
        job = self._jobs.start(caller.unique_name, caller.uid, bits, self.slow_bit_interval)
        if caller.gone:  # it left while we asked who it was
            self._jobs.owner_gone(caller.unique_name)
        # Per job at debug: at info, a busy randomd would reach journald's
        # rate limit and its warnings would be dropped with the rest.
        log.debug("job %d: %d bits for uid %d", job.id, bits, caller.uid,
                 extra={"RANDOMD_JOB": job.id, "RANDOMD_UID": caller.uid,
                        "RANDOMD_SENDER": caller.unique_name})
        return api.job_path(job.id)

    @method()
    async def CancelAll(self, call: Call) -> None:
        caller = await self._authority.authorize(call, api.ACTION_MANAGE_JOBS)
        count = self._jobs.cancel_all()
        log.info("%d jobs cancelled by uid %d", count, caller.uid,
                 extra={"RANDOMD_UID": caller.uid, "RANDOMD_SENDER": caller.unique_name})

    @method()
    async def Reload(self, call: Call) -> None:
        """Re-read the configuration file, as SIGHUP does, and answer once it is applied.

        An addition to API.md, for ExecReload=: `systemctl reload` on
        systemd 252 (Debian 12) returns when ExecReload= exits, so a signal
        would let it return before the new configuration is in effect.
        """
        caller = await self._authority.authorize(call, api.ACTION_CONFIGURE)
        log.info("reload asked by uid %d", caller.uid,
                 extra={"RANDOMD_UID": caller.uid, "RANDOMD_SENDER": caller.unique_name})
        try:
            self._reload()
        except ConfigError as error:
            raise errors.Failed(f"The configuration was not reloaded: {error}") from None

    # -- properties ----------------------------------------------------

    @dbus_property("s", "const")
    def Version(self) -> str:
        return __version__

    @dbus_property("u", "true")
    def MaxQuickBits(self) -> int:
        return self._config.max_quick_bits

    @dbus_property("u", "true")
    def MaxBytes(self) -> int:
        return self._config.max_bytes

    @dbus_property("u", "true")
    def MaxSlowBits(self) -> int:
        return self._config.max_slow_bits

    @dbus_property("u", "true")
    def MaxJobs(self) -> int:
        return self._config.max_jobs

    @dbus_property("u", "true")
    def MaxJobsPerUser(self) -> int:
        return self._config.max_jobs_per_user

    @dbus_property("d", "true")
    def SlowBitInterval(self) -> float:
        return self.slow_bit_interval

    @SlowBitInterval.setter
    async def SlowBitInterval(self, call: Call, seconds: float) -> None:
        if not (math.isfinite(seconds) and 0 <= seconds <= 60):
            raise errors.InvalidArgument(f"SlowBitInterval must be between 0 and 60 seconds, "
                                         f"not {seconds}.")
        caller = await self._authority.authorize(call, api.ACTION_CONFIGURE)
        self.slow_bit_interval = seconds
        log.info("SlowBitInterval set to %g s by uid %d", seconds, caller.uid,
                 extra={"RANDOMD_UID": caller.uid, "RANDOMD_SENDER": caller.unique_name})

    @dbus_property("u", "true")
    def ActiveJobs(self) -> int:
        return self._jobs.active

    @dbus_property("t", "true")
    def JobsStarted(self) -> int:
        return self._jobs.started

    # -- the daemon's side ---------------------------------------------

    def apply_config(self, config: Config) -> None:
        """Take a reloaded configuration; SlowBitInterval returns to its configured value."""
        before = self.get_all()
        self._config = config
        self.slow_bit_interval = config.slow_bit_interval
        self._jobs.config = config
        after = self.get_all()
        changed = [name for name in after if after[name].value != before[name].value]
        if changed:
            self._tree.properties_changed(api.MANAGER_PATH, self, changed)

    def jobs_changed(self) -> None:
        """Announce ActiveJobs and JobsStarted after a job starts or ends.

        At once when the last announcement is older than JOBS_ANNOUNCE_INTERVAL,
        else once that interval has passed (with the values of that time).
        """
        if self._jobs_announcement is not None:
            return
        loop = asyncio.get_running_loop()
        due = self._jobs_announced + JOBS_ANNOUNCE_INTERVAL
        if loop.time() >= due:
            self._announce_jobs()
        else:
            self._jobs_announcement = loop.call_at(due, self._announce_jobs)

    def flush_announcements(self) -> None:
        """Send a waiting announcement now (before the daemon leaves the bus)."""
        if self._jobs_announcement is not None:
            self._jobs_announcement.cancel()
            self._announce_jobs()

    def _announce_jobs(self) -> None:
        self._jobs_announcement = None
        self._jobs_announced = asyncio.get_running_loop().time()
        self._tree.properties_changed(api.MANAGER_PATH, self, ["ActiveJobs", "JobsStarted"])


_random_integer = randomness.random_integer
