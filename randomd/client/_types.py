"""Plain values the client returns: Limits, JobInfo, and the job State names."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import api

__all__ = ["State", "Limits", "JobInfo"]


class State(enum.StrEnum):
    """A job's State property (API.md); compares equal to the plain strings."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


def state(text: str) -> State | str:
    """*text* as a State, or as it is when randomd names a state this client does not know."""
    try:
        return State(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class Limits:
    """randomd's limits, from its manager properties."""

    max_quick_bits: int
    max_bytes: int
    max_slow_bits: int
    max_jobs: int
    max_jobs_per_user: int

    @classmethod
    def from_properties(cls, props: dict[str, Any]) -> Limits:
        return cls(props["MaxQuickBits"], props["MaxBytes"], props["MaxSlowBits"],
                   props["MaxJobs"], props["MaxJobsPerUser"])


def _time(microseconds: int) -> datetime | None:
    if not microseconds:
        return None
    return datetime.fromtimestamp(microseconds / 1e6, UTC)


@dataclass(frozen=True)
class JobInfo:
    """The properties of one job (API.md), read at one moment.

    ``created`` and ``finished`` are aware datetimes (UTC); ``finished`` is
    None while the job runs.
    """

    id: int
    path: str
    bits: int
    bits_done: int
    progress: float
    state: State | str
    error: str
    owner_uid: int
    owner: str
    owner_connected: bool
    created: datetime
    finished: datetime | None

    @classmethod
    def from_properties(cls, path: str, props: dict[str, Any]) -> JobInfo:
        created = _time(props.get("Created", 0)) or datetime.fromtimestamp(0, UTC)
        return cls(
            id=int(props.get("Id") or path.rsplit("/", 1)[-1]), path=path,
            bits=props["Bits"], bits_done=props["BitsDone"], progress=props["Progress"],
            state=state(props["State"]), error=props.get("Error", ""),
            owner_uid=props["OwnerUID"], owner=props["Owner"],
            # Before OwnerConnected existed a job left with its owner.
            owner_connected=props.get("OwnerConnected", True),
            created=created, finished=_time(props.get("Finished", 0)))


def job_path(job: int | str) -> str:
    """The object path of a job given by id (7, "7") or path; ValueError otherwise."""
    if isinstance(job, bool):
        raise ValueError(f"{job!r} is not a job id")
    if isinstance(job, int):
        number = str(job)
    else:
        prefix = api.JOBS_PATH + "/"
        number = job[len(prefix):] if job.startswith(prefix) else job
    if not (number.isascii() and number.isdigit() and int(number) > 0):
        raise ValueError(f"{job!r} is not a job: give an id such as 7 or a path such as "
                         f"{api.job_path(7)}")
    return api.job_path(int(number))
