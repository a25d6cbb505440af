"""slow and wait: follow one job to its end, with a progress bar on a terminal.

slow subscribes before it calls Slow, so no signal of the new job can be
missed: the job's Finished signal (unicast to us, so only randomd can have
sent it, and it is checked anyway) and, for the bar, the job's
PropertiesChanged.  Signals that arrive before Slow's reply are kept until
its path is known.  Ctrl-C cancels the job on randomd and exits 130 (a
job outlives randomctl's connection: leaving alone would not end it).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .. import api
from ..bus import MessageType
from . import exits
from .client import PROPERTIES, match_rule
from .context import Context
from .progress import ProgressBar

_NAME_OWNER_CHANGED = ("type='signal',sender='org.freedesktop.DBus',"
                       "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                       f"path='/org/freedesktop/DBus',arg0='{api.BUS_NAME}'")
CANCEL_TIMEOUT = 5.0  # seconds to cancel a job and see it end after Ctrl-C

_ENDINGS = {
    "Cancelled": "Job {id} was cancelled.",
    "Expired": "Job {id} expired: it ran longer than randomd's JobTimeout.",
    "ShuttingDown": "Job {id} failed: randomd is shutting down.",
}


def job_id(path: str) -> int:
    """The id in a job path, a number as in every JSON object."""
    return int(path.rsplit("/", 1)[-1])


def ending(path: str, state: str, error: str) -> exits.CtlError:
    """The failure of a job that ended *state* with D-Bus error *error*."""
    short = error.removeprefix(api.ERROR_PREFIX)
    message = _ENDINGS.get(short, "Job {id} " + (state if state != "failed" else "failed") + ".")
    return exits.CtlError(exits.FAILURE, message.format(id=job_id(path)), error or None,
                          id=job_id(path), path=path, state=state)


class JobWatch:
    """Signals about jobs, kept by path until the job of interest is known."""

    def __init__(self, ctx: Context) -> None:
        self._client = ctx.client
        self._finished: dict[str, tuple[str, list[Any]]] = {}  # path -> (sender, body)
        self._changed = asyncio.Event()
        self.path: str | None = None
        self.bar: ProgressBar | None = None
        self.service_lost = False

    def on_message(self, msg: Any) -> None:
        """The bus library's message handler (returns None: never handles calls)."""
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.member == "Finished" and msg.interface == api.JOB_INTERFACE:
            self._finished[msg.path] = (msg.sender, list(msg.body))
            self._changed.set()
        elif (msg.member == "PropertiesChanged" and msg.interface == PROPERTIES
              and msg.path == self.path and self.bar is not None
              and self._client.from_service(msg)):
            done = msg.body[1].get("BitsDone")
            if done is not None:
                self.bar.update(done.value)
        elif (msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus"
              and msg.body[:1] == [api.BUS_NAME] and msg.body[2] == ""):
            self.service_lost = True
            self._changed.set()

    async def finished(self) -> tuple[str, str, str]:
        """The (state, number, error) of the Finished signal of self.path, from randomd."""
        while True:
            sender, body = self._finished.get(self.path or "", (None, []))
            if sender is not None and sender == self._client.service:
                state, number, error = body
                return state, number, error
            if self.service_lost:
                raise exits.CtlError(exits.UNAVAILABLE,
                                     f"randomd stopped before job {job_id(self.path or '')} "
                                     "finished.")
            self._changed.clear()
            await self._changed.wait()

    async def start_bar(self, ctx: Context, path: str) -> None:
        """Draw a bar for *path* from its current properties."""
        props = await ctx.client.get_all(path, api.JOB_INTERFACE)
        self.bar = ProgressBar(ctx.out.stderr, props["Bits"], props["Created"])
        self.bar.update(props["BitsDone"])
        self.bar.start()

    def end_bar(self, complete: bool = False) -> None:
        if self.bar is not None:
            self.bar.finish(complete)


async def slow(ctx: Context) -> int:
    """randomctl slow [BITS] [--no-wait]."""
    client, args = ctx.client, ctx.args
    watch = JobWatch(ctx)
    client.add_handler(watch.on_message)
    rules = [match_rule(interface=api.JOB_INTERFACE, member="Finished",
                        path_namespace=api.JOBS_PATH), _NAME_OWNER_CHANGED]
    if ctx.show_progress and not args.no_wait:
        rules.append(match_rule(interface=PROPERTIES, member="PropertiesChanged",
                                path_namespace=api.JOBS_PATH))
    await client.add_match(*rules)
    starting = asyncio.ensure_future(client.call(
        api.MANAGER_PATH, api.MANAGER_INTERFACE, "Slow", "u", [args.bits],
        action=api.ACTION_SLOW))
    try:
        path = (await asyncio.shield(starting)).body[0]
    except asyncio.CancelledError:
        if not ctx.interrupted:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
        await _cancel_started(ctx, watch, starting)
        raise exits.CtlError(exits.INTERRUPTED, "Interrupted; the job was cancelled.") from None
    watch.path = path
    if args.no_wait:  # the job runs on after we leave: randomctl wait ID collects it
        ctx.out.result({"id": job_id(path), "path": path, "bits": args.bits}, str(job_id(path)))
        return exits.OK
    try:
        async with asyncio.timeout(args.timeout):
            if ctx.show_progress:
                await watch.start_bar(ctx, path)
            state, number, error = await watch.finished()
    except asyncio.CancelledError:
        if not ctx.interrupted:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
        watch.end_bar()
        await _cancel(ctx, watch, path)
        raise exits.CtlError(exits.INTERRUPTED, f"Interrupted; job {job_id(path)} cancelled.",
                             id=job_id(path), path=path) from None
    except TimeoutError:
        watch.end_bar()
        await _cancel(ctx, watch, path)
        raise exits.CtlError(exits.FAILURE, f"Job {job_id(path)} did not finish within "
                             f"{args.timeout:g} s (--timeout); it was cancelled.",
                             id=job_id(path), path=path, timeout=args.timeout) from None
    except BaseException:
        watch.end_bar()
        raise
    if state != "completed":
        watch.end_bar()
        raise ending(path, state, error)
    watch.end_bar(complete=True)
    ctx.out.result({"id": job_id(path), "path": path, "bits": args.bits, "state": state,
                    "number": number}, number)
    return exits.OK


async def _cancel_started(ctx: Context, watch: JobWatch, starting: asyncio.Future) -> None:
    """Ctrl-C came while Slow was on its way: cancel the job it starts, if any."""
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT):
            path = (await starting).body[0]
    except (exits.CtlError, TimeoutError):
        return  # no job, or no answer to say which one: it runs on
    watch.path = path
    await _cancel(ctx, watch, path)


async def _cancel(ctx: Context, watch: JobWatch, path: str) -> None:
    """Cancel our job and wait briefly for its end.

    A job outlives our connection: unless cancelled, it would run on after
    randomctl exits.
    """
    with contextlib.suppress(exits.CtlError, TimeoutError):
        async with asyncio.timeout(CANCEL_TIMEOUT):
            await ctx.client.call(path, api.JOB_INTERFACE, "Cancel", timeout=None)
            await watch.finished()


async def wait(ctx: Context) -> int:
    """randomctl wait JOB."""
    client, path = ctx.client, ctx.args.job
    watch = JobWatch(ctx)
    watch.path = path
    try:
        async with asyncio.timeout(ctx.args.timeout):
            if ctx.show_progress:
                client.add_handler(watch.on_message)
                await client.add_match(match_rule(interface=PROPERTIES,
                                                  member="PropertiesChanged", path=path))
                await watch.start_bar(ctx, path)
            reply = await client.call(path, api.JOB_INTERFACE, "Wait",
                                      action=api.ACTION_MANAGE_JOBS, timeout=None)
    except asyncio.CancelledError:
        watch.end_bar()
        if not ctx.interrupted:
            raise
        raise exits.CtlError(exits.INTERRUPTED,
                             f"Interrupted; job {job_id(path)} goes on.") from None
    except TimeoutError:
        watch.end_bar()
        raise exits.CtlError(exits.FAILURE, f"Job {job_id(path)} did not finish within "
                             f"{ctx.args.timeout:g} s (--timeout).", id=job_id(path),
                             path=path, timeout=ctx.args.timeout) from None
    except exits.CtlError as error:
        watch.end_bar()
        if error.dbus_error and error.dbus_error.startswith(api.ERROR_PREFIX):
            error.details.update(id=job_id(path), path=path)
        raise
    number = reply.body[0]
    watch.end_bar(complete=True)
    ctx.out.result({"id": job_id(path), "path": path, "state": "completed",
                    "number": number}, number)
    return exits.OK
