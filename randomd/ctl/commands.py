"""The short commands: one or two calls to randomd, then the answer."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from .. import api
from . import exits
from .context import Context
from .follow import job_id
from .output import age, plural, table, timestamp

# Job properties in API.md's order, with their JSON keys.
JOB_KEYS = {"Id": "id", "Bits": "bits", "BitsDone": "bits_done", "Progress": "progress",
            "State": "state", "Error": "error", "OwnerUID": "owner_uid", "Owner": "owner",
            "OwnerConnected": "owner_connected", "Created": "created", "Finished": "finished"}
MANAGER_KEYS = {"Version": "version", "MaxQuickBits": "max_quick_bits",
                "MaxBytes": "max_bytes", "MaxSlowBits": "max_slow_bits", "MaxJobs": "max_jobs",
                "MaxJobsPerUser": "max_jobs_per_user", "SlowBitInterval": "slow_bit_interval",
                "ActiveJobs": "active_jobs", "JobsStarted": "jobs_started"}


async def quick(ctx: Context) -> int:
    """randomctl quick [BITS]."""
    bits = ctx.args.bits
    reply = await ctx.client.call(api.MANAGER_PATH, api.MANAGER_INTERFACE, "Quick", "u", [bits])
    number = reply.body[0]
    ctx.out.result({"bits": bits, "number": number}, number)
    return exits.OK


async def bytes_(ctx: Context) -> int:
    """randomctl bytes COUNT [--hex|--base64|--raw]."""
    count, encoding = ctx.args.count, ctx.args.encoding
    reply = await ctx.client.call(api.MANAGER_PATH, api.MANAGER_INTERFACE, "Bytes", "u", [count])
    data: bytes = reply.body[0]
    if encoding == "raw":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return exits.OK
    if encoding == "base64":
        import base64
        text = base64.b64encode(data).decode("ascii")
    else:
        text = data.hex()
    ctx.out.result({"count": len(data), "encoding": encoding, "data": text}, text)
    return exits.OK


def job_json(path: str, props: dict[str, Any]) -> dict[str, Any]:
    """A job's properties as JSON, with its path; the id is a number, as everywhere."""
    data = {key: props.get(name) for name, key in JOB_KEYS.items()}
    return {**data, "id": job_id(path), "path": path}


def _by_id(jobs: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(jobs.items(), key=lambda item: int(job_id(item[0])))


def jobs_table(ctx: Context, jobs: dict[str, dict[str, Any]]) -> str:
    """ID STATE PROGRESS BITS UID AGE, one job a line, by id."""
    now = time.time()
    rows = [(props["Id"], props["State"], f"{int(100 * props['Progress'])}%",
             f"{props['BitsDone']}/{props['Bits']}", str(props["OwnerUID"]),
             age(now - props["Created"] / 1e6)) for _path, props in _by_id(jobs)]
    return table(("ID", "STATE", "PROGRESS", "BITS", "UID", "AGE"), rows,
                 (True, False, True, True, True, False), legend=ctx.out.legend,
                 paint={1: ctx.out.state})


async def jobs(ctx: Context) -> int:
    """randomctl jobs."""
    found = await ctx.client.jobs()
    text = jobs_table(ctx, found) if found else ("No jobs." if ctx.out.legend else None)
    if found and ctx.out.legend:
        text = f"{text}\n\n{plural(len(found), 'job')} listed."
    ctx.out.result([job_json(path, props) for path, props in _by_id(found)], text)
    return exits.OK


async def show(ctx: Context) -> int:
    """randomctl show JOB."""
    path = ctx.args.job
    props = await ctx.client.get_all(path, api.JOB_INTERFACE)
    lines = [f"Path={path}"]
    for name in JOB_KEYS:
        value = props.get(name)
        if name in ("Created", "Finished"):
            value = timestamp(value or 0)
        elif name == "Progress":
            value = f"{value:g}"
        elif name == "OwnerConnected":
            value = "yes" if value else "no"
        lines.append(f"{name}={value}")
    ctx.out.result(job_json(path, props), "\n".join(lines))
    return exits.OK


async def cancel(ctx: Context) -> int:
    """randomctl cancel JOB...: every job is tried; the first failure sets the status."""
    async def one(path: str) -> dict[str, Any]:
        try:
            await ctx.client.call(path, api.JOB_INTERFACE, "Cancel",
                                  action=api.ACTION_MANAGE_JOBS)
        except exits.CtlError as error:
            return {"id": job_id(path), "path": path, "failure": error}
        return {"id": job_id(path), "path": path, "cancelled": True, "error": None}

    results = await asyncio.gather(*(one(path) for path in dict.fromkeys(ctx.args.jobs)))
    status = exits.OK
    for result in results:
        failure = result.pop("failure", None)
        if failure is not None:
            ctx.out.note(failure.message)
            result.update(failure.as_json(), cancelled=False)  # "error": the ERROR object
            status = status or failure.status
    ctx.out.result(results, None)
    return status


async def cancel_all(ctx: Context) -> int:
    """randomctl cancel-all."""
    await ctx.client.call(api.MANAGER_PATH, api.MANAGER_INTERFACE, "CancelAll",
                          action=api.ACTION_MANAGE_JOBS)
    ctx.out.result({"cancelled_all": True}, None)
    return exits.OK


async def set_interval(ctx: Context) -> int:
    """randomctl set-interval SECONDS."""
    seconds = ctx.args.seconds
    await ctx.client.set_property(api.MANAGER_PATH, api.MANAGER_INTERFACE, "SlowBitInterval",
                                  "d", seconds, action=api.ACTION_CONFIGURE)
    ctx.out.result({"slow_bit_interval": seconds}, None)
    return exits.OK


async def status(ctx: Context) -> int:
    """randomctl status."""
    client = ctx.client
    props = await client.get_all(api.MANAGER_PATH, api.MANAGER_INTERFACE)
    found = await client.jobs()
    # The same jobs in text and JSON: the running ones (`jobs` lists them all).
    running = {path: job for path, job in found.items() if job["State"] == "running"}
    data = {"bus": client.label.removeprefix("the "), "name": api.BUS_NAME,
            "unique_name": client.service,
            **{key: props.get(name) for name, key in MANAGER_KEYS.items()},
            "finished_jobs_kept": len(found) - len(running),
            "jobs": [job_json(path, job) for path, job in _by_id(running)]}
    lines = [
        f"randomd {props['Version']} is running on {client.label}",
        f"      Name: {api.BUS_NAME} ({client.service})",
        f"      Jobs: {props['ActiveJobs']} running, {props['JobsStarted']} started, "
        f"{len(found) - len(running)} finished and kept",
        f"  Interval: {props['SlowBitInterval']:g} s per bit (SlowBitInterval)",
        f"    Limits: quick {props['MaxQuickBits']} bits, bytes {props['MaxBytes']}, "
        f"slow {props['MaxSlowBits']} bits",
        f"            {props['MaxJobs']} jobs, {props['MaxJobsPerUser']} per user",
    ]
    if running:
        lines += ["", jobs_table(ctx, running)]
    ctx.out.result(data, "\n".join(lines))
    return exits.OK


async def reload(ctx: Context) -> int:
    """randomctl reload."""
    await ctx.client.call(api.MANAGER_PATH, api.MANAGER_INTERFACE, "Reload",
                          action=api.ACTION_CONFIGURE)
    ctx.out.result({"reloaded": True}, None)
    return exits.OK
