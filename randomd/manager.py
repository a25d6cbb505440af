"""The manager object, /org/randomd/Random1: quick numbers, bytes, slow jobs, limits.

Each method reads in the same order: validate the arguments, authorize, act,
announce (PropertiesChanged), reply.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from . import __version__, api, errors, limits, randomness
from .coalesce import Coalescer
from .config import Config
from .dbus.interface import Call, Interface, dbus_property, method
from .errors import ConfigError
from .jobs import Job, JobListener
from .settings import SettingsListener

if TYPE_CHECKING:
    from .dbus.tree import ObjectTree
    from .jobs import JobManager
    from .polkit import Authority
    from .settings import Settings

log = logging.getLogger("randomd.manager")

# ActiveJobs and JobsStarted are announced at most this often: a burst of
# jobs starting or ending is one PropertiesChanged per interval (a broadcast,
# which the bus copies to every listener), with the latest values.
JOBS_ANNOUNCE_INTERVAL = 0.1


class Manager(Interface, JobListener, SettingsListener, name=api.MANAGER_INTERFACE):
    """org.randomd.Random1 on /org/randomd/Random1.

    It listens to the job core (for ActiveJobs and JobsStarted) and to the
    settings (a reload changes the limits and resets SlowBitInterval).
    """

    def __init__(self, settings: Settings, tree: ObjectTree, jobs: JobManager,
                 authority: Authority) -> None:
        self._settings = settings
        self._tree = tree
        self._jobs = jobs
        self._authority = authority
        # Set at run time by its setter; the configured value until the next reload.
        self.slow_bit_interval = settings.current.slow_bit_interval
        self._counters = Coalescer(JOBS_ANNOUNCE_INTERVAL, self._announce_counters)
        jobs.subscribe(self)
        settings.subscribe(self)

    # -- methods -------------------------------------------------------

    @method("u", "s", ("number",))
    def Quick(self, call: Call, bits: int) -> str:
        high = self._settings.current.max_quick_bits
        if not 1 <= bits <= high:
            limits.check_range("bits", bits, 1, high, "MaxQuickBits")
        return str(_random_integer(bits))

    @method("u", "ay", ("data",))
    def Bytes(self, call: Call, count: int) -> bytes:
        limits.check_range("count", count, 1, self._settings.current.max_bytes, "MaxBytes")
        return randomness.random_bytes(count)

    @method("u", "o", ("job",))
    async def Slow(self, call: Call, bits: int) -> str:
        self._jobs.check_bits(bits)
        caller = await self._authority.authorize(call.sender, api.ACTION_SLOW,
                                                 interactive=call.interactive)
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
        caller = await self._authority.authorize(call.sender, api.ACTION_MANAGE_JOBS,
                                                 interactive=call.interactive)
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
        caller = await self._authority.authorize(call.sender, api.ACTION_CONFIGURE,
                                                 interactive=call.interactive)
        log.info("reload asked by uid %d", caller.uid,
                 extra={"RANDOMD_UID": caller.uid, "RANDOMD_SENDER": caller.unique_name})
        try:
            self._settings.reload()
        except ConfigError as error:
            raise errors.Failed(f"The configuration was not reloaded: {error}") from None

    # -- properties ----------------------------------------------------

    @dbus_property("s", "const")
    def Version(self) -> str:
        return __version__

    @dbus_property("u", "true")
    def MaxQuickBits(self) -> int:
        return self._settings.current.max_quick_bits

    @dbus_property("u", "true")
    def MaxBytes(self) -> int:
        return self._settings.current.max_bytes

    @dbus_property("u", "true")
    def MaxSlowBits(self) -> int:
        return self._settings.current.max_slow_bits

    @dbus_property("u", "true")
    def MaxJobs(self) -> int:
        return self._settings.current.max_jobs

    @dbus_property("u", "true")
    def MaxJobsPerUser(self) -> int:
        return self._settings.current.max_jobs_per_user

    @dbus_property("d", "true")
    def SlowBitInterval(self) -> float:
        return self.slow_bit_interval

    # The setter pattern of properties: mypy knows it of @property only.
    @SlowBitInterval.setter  # type: ignore[no-redef]
    async def SlowBitInterval(self, call: Call, seconds: float) -> None:
        if not (math.isfinite(seconds) and 0 <= seconds <= 60):
            raise errors.InvalidArgument(f"SlowBitInterval must be between 0 and 60 seconds, "
                                         f"not {seconds}.")
        caller = await self._authority.authorize(call.sender, api.ACTION_CONFIGURE,
                                                 interactive=call.interactive)
        self.slow_bit_interval = seconds
        log.info("SlowBitInterval set to %g s by uid %d", seconds, caller.uid,
                 extra={"RANDOMD_UID": caller.uid, "RANDOMD_SENDER": caller.unique_name})

    @dbus_property("u", "true")
    def ActiveJobs(self) -> int:
        return self._jobs.active

    @dbus_property("t", "true")
    def JobsStarted(self) -> int:
        return self._jobs.started

    # -- what it hears ------------------------------------------------

    def job_started(self, job: Job) -> None:
        self._counters.request()

    def job_finished(self, job: Job) -> None:
        self._counters.request()

    def config_changed(self, old: Config, new: Config) -> None:
        """Announce the limits a reload changed; SlowBitInterval returns to its configured value."""
        changed = [name for name, attribute in _LIMITS.items()
                   if getattr(old, attribute) != getattr(new, attribute)]
        if self.slow_bit_interval != new.slow_bit_interval:
            self.slow_bit_interval = new.slow_bit_interval
            changed.append("SlowBitInterval")
        if changed:
            self._tree.properties_changed(api.MANAGER_PATH, self, changed)

    def flush_announcements(self) -> None:
        """Send a waiting announcement now (before the daemon leaves the bus)."""
        self._counters.flush()

    def _announce_counters(self) -> None:
        self._tree.properties_changed(api.MANAGER_PATH, self, ["ActiveJobs", "JobsStarted"])


# The properties that are a configured limit, and their Config attribute.
_LIMITS = {"MaxQuickBits": "max_quick_bits", "MaxBytes": "max_bytes",
           "MaxSlowBits": "max_slow_bits", "MaxJobs": "max_jobs",
           "MaxJobsPerUser": "max_jobs_per_user"}
_random_integer = randomness.random_integer
