"""Jobs on the bus: one object per job, and the signals that follow its life.

JobPublisher listens to the job core and turns its events into D-Bus:
InterfacesAdded/InterfacesRemoved from the manager, coalesced
PropertiesChanged for progress and for the owner's departure, and the
Finished signal, unicast to the owner alone because it carries the owner's
secret.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from . import api, errors
from .callers import CallerRegistry
from .coalesce import Coalescer
from .dbus.interface import Call, Interface, Signal, dbus_property, method
from .dbus.tree import ObjectTree
from .jobs import Job, JobListener, JobManager

if TYPE_CHECKING:
    from .polkit import Authority

log = logging.getLogger("randomd.jobs")

# API.md: progress changes are coalesced to at most about ten a second per job.
PROGRESS_INTERVAL = 0.1
# Jobs whose progress waits are announced together, on a grid of this step,
# so that their signals leave in one write.  While the bus does not keep up
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
            await self._authority.authorize(call.sender, api.ACTION_MANAGE_JOBS,
                                            interactive=call.interactive)

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


class JobPublisher(JobListener):
    """The job core's events, published on the bus."""

    def __init__(self, tree: ObjectTree, callers: CallerRegistry, jobs: JobManager,
                 authority: Authority) -> None:
        self._tree = tree
        self._callers = callers
        self._jobs = jobs
        self._authority = authority
        self._objects: dict[int, JobObject] = {}
        # Each running job's progress announcements, at most one per PROGRESS_INTERVAL.
        self._progress: dict[int, Coalescer] = {}
        jobs.subscribe(self)

    def job_started(self, job: Job) -> None:
        obj = JobObject(job, self._jobs, self._callers, self._authority)
        self._objects[job.id] = obj
        self._progress[job.id] = Coalescer(
            PROGRESS_INTERVAL, partial(self._announce_progress, obj), grid=PROGRESS_TICK,
            hold=self._tree.congested)
        self._tree.export(api.job_path(job.id), obj)

    def job_progress(self, job: Job) -> None:
        self._progress[job.id].request()

    def _announce_progress(self, obj: JobObject) -> None:
        self._tree.properties_changed(api.job_path(obj.job.id), obj, ["BitsDone", "Progress"])

    def job_finished(self, job: Job) -> None:
        self._forget_progress(job)  # the end tells the last progress
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

    def job_owner_left(self, job: Job) -> None:
        obj = self._objects.get(job.id)
        if obj is not None:
            self._tree.properties_changed(api.job_path(job.id), obj, ["OwnerConnected"])

    def job_removed(self, job: Job) -> None:
        self._forget_progress(job)
        self._objects.pop(job.id, None)
        self._tree.unexport(api.job_path(job.id))

    def _forget_progress(self, job: Job) -> None:
        progress = self._progress.pop(job.id, None)
        if progress is not None:
            progress.cancel()


def no_such_job(path: str) -> errors.RandomdError:
    """The error for a call to a path where no object is: NoSuchJob below jobs/."""
    prefix = api.JOBS_PATH + "/"
    if path.startswith(prefix) and "/" not in path[len(prefix):]:
        return errors.NoSuchJob(f"No job {path[len(prefix):]}.")
    return errors.UnknownObject(f"No object at path {path}.")
