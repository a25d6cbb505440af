"""randomctl monitor: job events as they happen, until Ctrl-C.

Events come from randomd's broadcast signals only: InterfacesAdded
(created), PropertiesChanged of a job (progress, finished), InterfacesRemoved
(removed), and the bus's NameOwnerChanged (randomd stopped or started).
None of them carries a job's number.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .. import api
from ..api import RANDOMD_OWNER_CHANGED as _NAME_OWNER_CHANGED
from ..dbus import MessageType
from . import exits
from .client import match_rule, unwrap
from .context import Context
from .follow import job_id


def describe(event: dict[str, Any]) -> str:
    """One event as a line of text (without its time)."""
    kind, job = event["event"], event.get("id")
    if kind == "created":
        return (f"job {job} created: {event['bits']} bits for uid {event['owner_uid']} "
                f"({event['owner']})")
    if kind == "progress":
        of = f"/{event['bits']}" if event.get("bits") else ""
        percent = int(100 * event["progress"])
        return f"job {job} progress: {event['bits_done']}{of} bits ({percent}%)"
    if kind == "finished":
        error = f" ({event['error']})" if event.get("error") else ""
        return f"job {job} {event['state']}{error}"
    if kind == "removed":
        return f"job {job} removed"
    if kind == "started":
        return f"randomd started ({event['unique_name']})"
    return "randomd stopped"


class Monitor:
    """Turns randomd's signals into events and prints them."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._bits: dict[str, int] = {}  # job path -> Bits, to show progress as n/bits
        self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def know(self, jobs: dict[str, dict[str, Any]]) -> None:
        """Remember the size of jobs that exist already."""
        for path, props in jobs.items():
            self._bits.setdefault(path, props["Bits"])

    def on_message(self, msg: Any) -> None:
        if msg.message_type != MessageType.SIGNAL or self.failed.done():
            return
        try:
            for event in self._events(msg):
                self._print(event)
        except OSError as error:  # e.g. a closed pipe: stop, main reports it
            self.failed.set_exception(error)

    def _events(self, msg: Any) -> list[dict[str, Any]]:
        client = self._ctx.client
        if msg.member == "NameOwnerChanged" and msg.sender == api.BUS_DAEMON_NAME:
            name, _old, new = msg.body
            if name != api.BUS_NAME:
                return []
            client.service = new or None
            return [{"event": "started", "unique_name": new} if new else {"event": "stopped"}]
        if not client.from_service(msg):
            return []
        if msg.member == "InterfacesAdded" and msg.path == api.MANAGER_PATH:
            path, interfaces = msg.body
            props = unwrap(interfaces.get(api.JOB_INTERFACE, {}))
            if not props:
                return []
            self._bits[path] = props["Bits"]
            return [{"event": "created", "id": job_id(path), "path": path,
                     "bits": props["Bits"], "owner_uid": props["OwnerUID"],
                     "owner": props["Owner"]}]
        if msg.member == "InterfacesRemoved" and msg.path == api.MANAGER_PATH:
            path, interfaces = msg.body
            if api.JOB_INTERFACE not in interfaces:
                return []
            self._bits.pop(path, None)
            return [{"event": "removed", "id": job_id(path), "path": path}]
        if (msg.member == "PropertiesChanged" and msg.interface == api.PROPERTIES_INTERFACE
                and msg.body[0] == api.JOB_INTERFACE):
            changed = unwrap(msg.body[1])
            base = {"id": job_id(msg.path), "path": msg.path}
            state = changed.get("State")
            if state is not None and state != "running":
                return [{"event": "finished", **base, "state": state,
                         "error": changed.get("Error", ""),
                         "bits_done": changed.get("BitsDone")}]
            if "BitsDone" in changed:
                return [{"event": "progress", **base, "bits_done": changed["BitsDone"],
                         "bits": self._bits.get(msg.path),
                         "progress": changed.get("Progress", 0.0)}]
        return []

    def _print(self, event: dict[str, Any]) -> None:
        now = time.time()
        out = self._ctx.out
        if out.as_json:
            out.json_line({"time": round(now, 6), **event})
        else:
            clock = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
            print(f"{clock} {describe(event)}", file=out.stdout, flush=True)


async def monitor(ctx: Context) -> int:
    """randomctl monitor: runs until Ctrl-C (status 0) or until the bus is lost (69)."""
    try:
        return await _monitor(ctx)
    except asyncio.CancelledError:
        if ctx.interrupted:
            return exits.OK
        raise


async def _monitor(ctx: Context) -> int:
    client = ctx.client
    watcher = Monitor(ctx)
    client.add_handler(watcher.on_message)
    await client.add_match(
        _NAME_OWNER_CHANGED,
        match_rule(interface=api.OBJECT_MANAGER_INTERFACE, path=api.MANAGER_PATH),
        match_rule(interface=api.PROPERTIES_INTERFACE, member="PropertiesChanged",
                   path_namespace=api.JOBS_PATH))
    await client.name_owner()  # after subscribing: no event falls in between
    watcher.know(await client.jobs())
    ctx.out.note(f"Monitoring randomd's jobs on {client.label}; press Ctrl-C to stop.")
    lost = asyncio.ensure_future(client.bus.wait_for_disconnect())
    try:
        await asyncio.wait([lost, watcher.failed], return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
    if watcher.failed.done():
        watcher.failed.result()  # raises the OSError
    raise exits.CtlError(exits.UNAVAILABLE, f"Lost the connection to {client.label}.")
