"""Jobs on the bus: one object per job, and the signals that follow its life.

JobPublisher receives the job core's events and turns them into D-Bus:
InterfacesAdded/InterfacesRemoved from the manager, coalesced
PropertiesChanged for progress and for the owner's departure, and the
Finished signal, unicast to the owner alone because it carries the owner's
secret.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable

from . import api, errors
from .callers import CallerRegistry
from .jobs import Job, JobManager
from .service import Call, Interface, ObjectTree, Signal, dbus_property, method

if TYPE_CHECKING:
    from .polkit import Authority

log = logging.getLogger("randomd.jobs")

# API.md: progress changes are coalesced to at most about ten a second per job.
PROGRESS_INTERVAL = 0.1
# Jobs whose progress waits are announced together, by one timer that fires
# at most this often (however many jobs run).  While the bus does not keep up
# with what randomd sends, progress waits (a job's end still announces its
# final progress): each PropertiesChanged is a broadcast, which the bus copies
# to every listener.
PROGRESS_TICK = 0.02


class JobObject(Interface, name=api.JOB_INTERFACE):
    """org.randomd.Random1.Job on /org/randomd/Random1/jobs/<id>."""

    finished_signal = Signal("Finished", "sss", ("state", "number", "error"))

    def __init__(self, job: Job, jobs: JobManager, callers: CallerRegistry,
                 authority: Authority) -> None:
        self.job = job
        self._jobs = jobs
        self._callers = callers
        self._authority = authority

    @method("", "s", ("number",))
    async def Wait(self, call: Call) -> str:
        await self._authorize(call)
        return str(await self._jobs.wait(self.job))

    @method()
    async def Cancel(self, call: Call) -> None:
        await self._authorize(call)
        self._jobs.cancel(self.job)

    async def _authorize(self, call: Call) -> None:
        """The owner's uid and root may use a job; others need manage-jobs."""
        caller = await self._callers.lookup(call.sender)
        if caller.uid != self.job.owner_uid:
            await self._authority.authorize(call, api.ACTION_MANAGE_JOBS)

    @dbus_property("s", "const")
    def Id(self) -> str:
        return str(self.job.id)

    @dbus_property("u", "const")
    def Bits(self) -> int:
        return self.job.bits

    @dbus_property("u", "true")
    def BitsDone(self) -> int:
        return self.job.bits_done

    @dbus_property("d", "true")
    def Progress(self) -> float:
        return self.job.progress

    @dbus_property("s", "true")
    def State(self) -> str:
        return str(self.job.state)

    @dbus_property("s", "true")
    def Error(self) -> str:
        return self.job.error_name

    @dbus_property("u", "const")
    def OwnerUID(self) -> int:
        return self.job.owner_uid

    @dbus_property("s", "const")
    def Owner(self) -> str:
        return self.job.owner

    @dbus_property("b", "true")
    def OwnerConnected(self) -> bool:
        return self.job.owner_connected

    @dbus_property("t", "const")
    def Created(self) -> int:
        return self.job.created_us

    @dbus_property("t", "true", name="Finished")
    def FinishedTime(self) -> int:
        return self.job.finished_us


class JobPublisher:
    """The job core's events (jobs.JobEvents), published on the bus."""

    def __init__(self, tree: ObjectTree, callers: CallerRegistry,
                 on_change: Callable[[], None]) -> None:
        self._tree = tree
        self._callers = callers
        self._on_change = on_change
        self._objects: dict[int, JobObject] = {}
        # When each running job last announced progress (at first: when it started).
        self._last_progress: dict[int, float] = {}
        # Running jobs whose progress is not announced yet, and the timer for them.
        self._pending: dict[int, Job] = {}
        self._tick: asyncio.TimerHandle | None = None
        self.jobs: JobManager  # set by the daemon once both exist
        self.authority: Authority

    def job_started(self, job: Job) -> None:
        obj = JobObject(job, self.jobs, self._callers, self.authority)
        self._objects[job.id] = obj
        self._last_progress[job.id] = asyncio.get_running_loop().time()
        self._tree.export(api.job_path(job.id), obj)
        self._on_change()

    def job_progress(self, job: Job) -> None:
        if job.id in self._pending:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self._last_progress.get(job.id, 0.0) + PROGRESS_INTERVAL
        if now >= due and not self._tree.congested():
            self._announce_progress(job.id, now)
            return
        self._pending[job.id] = job
        if self._tick is None:
            self._tick = loop.call_at(max(due, now + PROGRESS_TICK), self._on_tick)

    def _on_tick(self) -> None:
        """Announce the progress of every job that waited long enough; wait for the rest."""
        self._tick = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._tree.congested():
            self._tick = loop.call_at(now + PROGRESS_INTERVAL, self._on_tick)
            return
        next_due = None
        for job_id in list(self._pending):
            due = self._last_progress.get(job_id, 0.0) + PROGRESS_INTERVAL
            if now >= due:
                del self._pending[job_id]
                self._announce_progress(job_id, now)
            elif next_due is None or due < next_due:
                next_due = due
        if next_due is not None:
            self._tick = loop.call_at(max(next_due, now + PROGRESS_TICK), self._on_tick)

    def _announce_progress(self, job_id: int, now: float) -> None:
        obj = self._objects.get(job_id)
        if obj is not None:
            self._last_progress[job_id] = now
            self._tree.properties_changed(api.job_path(job_id), obj, ["BitsDone", "Progress"])

    def job_finished(self, job: Job) -> None:
        self._pending.pop(job.id, None)
        if not self._pending and self._tick is not None:
            self._tick.cancel()
            self._tick = None
        self._last_progress.pop(job.id, None)
        path = api.job_path(job.id)
        obj = self._objects[job.id]
        self._tree.properties_changed(path, obj, ["BitsDone", "Progress", "State", "Error",
                                                  "Finished"])
        # Even when the owner has left: the bus then drops it, and no one
        # else may receive it.
        number = str(job.number) if job.number is not None else ""
        self._tree.emit(path, api.JOB_INTERFACE, "Finished", "sss",
                        [str(job.state), number, job.error_name], destination=job.owner)
        log.debug("job %d %s", job.id, job.state,
                 extra={"RANDOMD_JOB": job.id, "RANDOMD_UID": job.owner_uid,
                        "RANDOMD_SENDER": job.owner})
        self._on_change()

    def job_owner_left(self, job: Job) -> None:
        obj = self._objects.get(job.id)
        if obj is not None:
            self._tree.properties_changed(api.job_path(job.id), obj, ["OwnerConnected"])

    def job_removed(self, job: Job) -> None:
        self._pending.pop(job.id, None)
        self._last_progress.pop(job.id, None)
        self._objects.pop(job.id, None)
        self._tree.unexport(api.job_path(job.id))


def no_such_job(path: str) -> errors.RandomdError:
    """The error for a call to a path where no object is: NoSuchJob below jobs/."""
    prefix = api.JOBS_PATH + "/"
    if path.startswith(prefix) and "/" not in path[len(prefix):]:
        return errors.NoSuchJob(f"No job {path[len(prefix):]}.")
    return errors.UnknownObject(f"No object at path {path}.")
