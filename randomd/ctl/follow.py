"""slow and wait: follow one job to its end, with a progress bar on a terminal.

The job is a randomd.client job: the library subscribes before Slow, keeps
early signals, checks their sender, falls back to Wait for a job randomctl
did not start, and sees randomd leave the bus.  Here: the bar, the output,
the exit statuses, and Ctrl-C, which cancels the job slow started (wait
leaves it running).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypedDict

from .. import api
from ..client import aio, errors
from . import exits
from .context import Context
from .progress import ProgressBar

CANCEL_TIMEOUT = 5.0  # seconds to cancel a job and see it end after Ctrl-C


def job_id(path: str) -> int:
    """The id in a job path, a number as in every JSON object."""
    return int(path.rsplit("/", 1)[-1])


class Bar:
    """The progress bar of one job, if the output is a terminal."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._bar: ProgressBar | None = None

    async def start(self, job: aio.Job) -> None:
        if not self._ctx.show_progress:
            return
        props = await self._ctx.client.get_all(job.path, api.JOB_INTERFACE)
        self._bar = ProgressBar(self._ctx.out.stderr, props["Bits"], props["Created"])
        self._bar.update(max(props["BitsDone"], job.bits_done))
        self._bar.start()
        job.on_progress(lambda j: self._bar.update(j.bits_done) if self._bar else None)

    def end(self, complete: bool = False) -> None:
        if self._bar is not None:
            self._bar.finish(complete)
            self._bar = None


class _Details(TypedDict):
    """The details of CtlError that name a job."""

    id: int
    path: str


def _details(job: aio.Job) -> _Details:
    return {"id": job.id, "path": job.path}


async def slow(ctx: Context) -> int:
    """randomctl slow [BITS] [--no-wait]."""
    client, args = ctx.client, ctx.args
    starting = asyncio.ensure_future(client.conn.slow(args.bits))
    try:
        # A Connection makes jobs of the job_class it was opened with: aio.Job.
        job: aio.Job = await asyncio.shield(starting)  # type: ignore[arg-type]
    except asyncio.CancelledError:
        if not ctx.interrupted:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
        await _cancel_started(starting)
        raise exits.CtlError(exits.INTERRUPTED, "Interrupted; the job was cancelled.") from None
    except errors.Error as error:
        raise client.failure(error, api.ACTION_SLOW) from None
    if args.no_wait:  # the job runs on after we leave: randomctl wait ID collects it
        ctx.out.result({**_details(job), "bits": args.bits}, str(job.id))
        return exits.OK
    bar = Bar(ctx)
    try:
        await bar.start(job)
        ended = await job.wait(args.timeout)
    except asyncio.CancelledError:
        bar.end()
        if not ctx.interrupted:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
        await _cancel(job)
        raise exits.CtlError(exits.INTERRUPTED, f"Interrupted; job {job.id} cancelled.",
                             **_details(job)) from None
    except BaseException:
        bar.end()
        raise
    if not ended:
        bar.end()
        await _cancel(job)
        raise exits.CtlError(exits.FAILURE, f"Job {job.id} did not finish within "
                             f"{args.timeout:g} s (--timeout); it was cancelled.",
                             **_details(job), timeout=args.timeout)
    try:
        number = job.value
    except errors.Error as error:
        bar.end()
        raise client.failure(error, **_details(job), state=str(job.state)) from None
    bar.end(complete=True)
    ctx.out.result({**_details(job), "bits": args.bits, "state": str(job.state),
                    "number": str(number)}, str(number))
    return exits.OK


async def _cancel_started(starting: asyncio.Future) -> None:
    """Ctrl-C came while Slow was on its way: cancel the job it starts, if any."""
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT):
            job = await starting
    except (errors.Error, TimeoutError):
        return  # no job, or we could not learn of it in time
    await _cancel(job)


async def _cancel(job: aio.Job) -> None:
    """Cancel our job and wait briefly for its end, so that it is listed as cancelled."""
    with contextlib.suppress(errors.Error, TimeoutError):
        async with asyncio.timeout(CANCEL_TIMEOUT):
            await job.cancel()


async def wait(ctx: Context) -> int:
    """randomctl wait JOB."""
    client, path = ctx.client, ctx.args.job
    details: _Details = {"id": job_id(path), "path": path}
    job: aio.Job = await client.run(client.conn.job(path), api.ACTION_MANAGE_JOBS, **details)
    bar = Bar(ctx)
    try:
        await bar.start(job)
        number = await job.collect(ctx.args.timeout)
    except asyncio.CancelledError:
        bar.end()
        if not ctx.interrupted:
            raise
        raise exits.CtlError(exits.INTERRUPTED, f"Interrupted; job {job.id} goes on.") from None
    except TimeoutError:
        bar.end()
        raise exits.CtlError(exits.FAILURE, f"Job {job.id} did not finish within "
                             f"{ctx.args.timeout:g} s (--timeout).", **details,
                             timeout=ctx.args.timeout) from None
    except errors.Error as error:
        bar.end()
        raise client.failure(error, api.ACTION_MANAGE_JOBS, **details) from None
    except BaseException:
        bar.end()
        raise
    bar.end(complete=True)
    ctx.out.result({**details, "state": "completed", "number": str(number)}, str(number))
    return exits.OK
