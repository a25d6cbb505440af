"""The asyncio core that randomd.client and randomd.client.aio share.

Connection is one bus connection and everything the client does on it:
calls with timeouts and typed errors, the signals of jobs, and the jobs it
follows.  JobBase is a job's state, kept up to date from the loop of that
connection; the two public Job classes add their ways of waiting on it.

How no end is missed:
- the match rules for Finished, the jobs' PropertiesChanged and the bus's
  NameOwnerChanged of randomd are in place before the first Slow;
- while a Slow (or an attach) is on its way, signals of unknown job paths
  are kept, and handed to the job once its path is known;
- a signal counts only when it comes from the unique name that answered
  for the job: job ids start at 1 again when randomd restarts;
- when that unique name leaves the bus, its unfinished jobs end in JobLost;
- a job the client did not start gets its end from Wait() (Finished goes
  only to the connection that started it), without a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from .. import api, dbus
from . import errors
from ._types import JobInfo, Limits, State, job_path
from ._types import state as as_state

log = logging.getLogger("randomd.client")

DEFAULT_TIMEOUT = 25.0  # seconds, as libdbus and sd-bus
INTERACTIVE_TIMEOUT = 300.0  # a password typed at a polkit prompt may take a while
CLOSE_TIMEOUT = 2.0  # for the bus to see us leave
UINT32_MAX = 2**32 - 1
# Wait() calls on the wire at once.  With the Bus's 64 call slots for all
# other calls this stays below dbus-daemon's 128 pending calls per connection.
MAX_WAITS = 48
_TICK = 0.05  # seconds: how late past its timeout a call may give up
_RULES = (
    f"type='signal',sender='{api.BUS_NAME}',interface='{api.JOB_INTERFACE}',member='Finished',"
    f"path_namespace='{api.JOBS_PATH}'",
    f"type='signal',sender='{api.BUS_NAME}',interface='{api.PROPERTIES_INTERFACE}',"
    f"member='PropertiesChanged',path_namespace='{api.JOBS_PATH}',arg0='{api.JOB_INTERFACE}'",
    api.RANDOMD_OWNER_CHANGED,
)
_DEFAULT: Any = object()
# Looked up once: an enum member's attribute access costs more than a call's dispatch.
_NO_FLAGS = dbus.MessageFlag.NONE
_INTERACTIVE = dbus.MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION
_ERROR = dbus.MessageType.ERROR
_SIGNAL = dbus.MessageType.SIGNAL
_ERROR_STATES = {errors.Cancelled: State.CANCELLED, errors.Expired: State.EXPIRED}


def unwrap(value: Any) -> Any:
    """Variants, dicts and lists of them as plain Python values."""
    if isinstance(value, dbus.Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def check_uint(value: Any, name: str) -> int:
    """*value* as a D-Bus 'u' of at least 1; InvalidArgument, as randomd would say, if not."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidArgument(f"{name} must be a whole number, not {value!r}.")
    if value < 1:
        raise errors.InvalidArgument(f"{name} must be at least 1, not {value}.")
    if value > UINT32_MAX:
        raise errors.InvalidArgument(f"{name} must be at most {UINT32_MAX}, not {value}.")
    return value


def check_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise errors.InvalidArgument(f"SlowBitInterval must be a number of seconds, not {value!r}.")
    return float(value)


def ending(job_id: int, state: str, error_name: str) -> errors.Error:
    """The error of a job that ended *state* with D-Bus error *error_name* (from Finished)."""
    if state == State.CANCELLED:
        return errors.Cancelled(f"Job {job_id} was cancelled.", error_name or None)
    if state == State.EXPIRED:
        return errors.Expired(f"Job {job_id} expired: it ran longer than randomd's JobTimeout.",
                              error_name or None)
    if error_name == errors.ShuttingDown.default_dbus_name:
        return errors.ShuttingDown(f"Job {job_id} failed: randomd is shutting down.")
    error = errors.from_dbus(error_name or errors.Failed.default_dbus_name, "")
    return type(error)(f"Job {job_id} {state} ({error_name or 'no reason given'}).",
                       error.dbus_name)


class Connection:
    """One connection to the bus randomd is on, and the jobs followed on it."""

    def __init__(self, bus: dbus.Bus, label: str, interactive: bool,
                 timeout: float | None, job_class: type[JobBase]) -> None:
        self.bus = bus
        self.label = label
        self.interactive = interactive
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.thread = threading.current_thread()  # the client's own thread
        self.closed = False
        self._job_class = job_class
        self._live: dict[str, JobBase] = {}  # unfinished jobs, by path
        self._handles: weakref.WeakValueDictionary[str, JobBase] = weakref.WeakValueDictionary()
        self._early: dict[str, list[Any]] = {}  # signals of paths not known yet
        self._starting = 0  # Slow calls and attaches on their way
        self._gone: set[str] = set()  # unique names of randomd instances that left
        self._subscribed: asyncio.Future | None = None
        self._waits = asyncio.Semaphore(MAX_WAITS)
        self._tasks: set[asyncio.Task] = set()
        self._deadlines: dict[asyncio.Task, float] = {}  # calls with a timeout, by task
        self._timed_out: set[asyncio.Task] = set()
        self._ticker: asyncio.TimerHandle | None = None
        # Called in the loop when a job ended or background work finished:
        # the blocking client's Runner stops running the loop in its own
        # thread once nothing is left to follow (_runner.py).
        self.on_idle: Callable[[], None] | None = None
        self.runner: Any = None  # the blocking client's Runner, if any
        bus.add_message_handler(self._on_message)
        self._watcher = self.loop.create_task(self._watch_bus())

    @classmethod
    async def open(cls, bus: str = "system", address: str | None = None,
                   interactive: bool = False, timeout: float | None = DEFAULT_TIMEOUT,
                   job_class: type[JobBase] | None = None) -> Connection:
        """Connect to the system or session bus, or to *address*; Unavailable if none."""
        if bus not in ("system", "session"):
            raise ValueError(f"bus must be 'system' or 'session', not {bus!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be more than 0 seconds or None, not {timeout!r}")
        label = f"the bus at {address}" if address else f"the {bus} bus"
        try:
            async with asyncio.timeout(timeout):
                connection = await dbus.connect(address, system=bus != "session")
        except TimeoutError:
            raise errors.Unavailable(f"Cannot connect to {label}: it did not answer "
                                     f"within {timeout:g} s.") from None
        except dbus.UnsupportedLibrary as error:  # one line, as randomd says it
            raise errors.Unavailable(f"{error}.") from None
        except Exception as error:  # no socket, refused, bad address, authentication
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise errors.Unavailable(f"Cannot connect to {label}: {reason}.") from None
        return cls(connection, label, interactive, timeout, job_class or JobBase)

    async def close(self) -> None:
        """Leave the bus; whatever still waits on this connection gets Closed."""
        if self.closed:
            return
        self.closed = True
        for job in list(self._live.values()):
            job._close()
        self.bus.disconnect()
        current = asyncio.current_task()
        cancelling = current.cancelling() if current is not None else 0
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.bus.wait_for_disconnect()
        except asyncio.CancelledError:
            # Someone cancelled the library's disconnect future (a task awaiting
            # wait_for_disconnect that was cancelled); only our own cancellation counts.
            if current is not None and current.cancelling() > cancelling:
                raise
        except Exception:  # already gone, or slow: the socket is closed anyway
            pass
        tasks = [task for task in (*self._tasks, self._watcher) if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run *coro* in the background, holding on to it until it ends."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if self.on_idle is not None:
            self.on_idle()

    def watching(self) -> bool:
        """Whether anything here needs the loop to run: unfinished jobs, jobs on
        their way, or background work (besides watching the bus)."""
        return bool(self._live or self._starting or self._tasks)

    # -- calls -------------------------------------------------------------

    async def call(self, path: str, interface: str, member: str, signature: str = "",
                   body: Iterable[Any] = (), *, action: bool = False, timeout: Any = _DEFAULT,
                   what: str | None = None, slots: asyncio.Semaphore | None = None) -> Any:
        """Call randomd and return the reply message; raise the Error of an error reply.

        *action*: the call may need polkit, so it carries the interactive
        flag when the client allows prompts (and may then take 300 s).
        *timeout* None waits as long as it takes; by default the client's.
        """
        if self.closed:
            raise errors.Closed("The randomd client is closed.")
        interactive = action and self.interactive
        msg = dbus.Message(
            destination=api.BUS_NAME, path=path, interface=interface, member=member,
            signature=signature, body=list(body),
            flags=_INTERACTIVE if interactive else _NO_FLAGS)
        if timeout is _DEFAULT:
            timeout = INTERACTIVE_TIMEOUT if interactive else self.timeout
        reply = await self._send(msg, timeout, what or member, slots)
        if reply.message_type == _ERROR:
            name, text = reply.error_name or "", dbus.error_text(reply)
            if name == api.UNKNOWN_OBJECT_ERROR and path.startswith(api.JOBS_PATH + "/"):
                raise errors.NoSuchJob(f"No job {path.rsplit('/', 1)[-1]}.")
            raise errors.from_dbus(name, text, what or member)
        return reply

    async def _send(self, msg: Any, timeout: float | None, what: str,
                    slots: asyncio.Semaphore | None = None) -> Any:
        task = None
        if timeout is not None:
            # Not asyncio.timeout: a timer per call, cancelled a moment later,
            # costs a quarter of a call's CPU; one coarse ticker serves all.
            task = asyncio.current_task()
            self._deadlines[task] = self.loop.time() + timeout  # type: ignore[index]
            if self._ticker is None:
                self._ticker = self.loop.call_later(_TICK, self._tick)
        slots = slots or self.bus.call_slots
        try:
            await slots.acquire()
            try:
                # Sent at once, never held for a joint write at the end of the
                # loop's turn: that saves system calls but delays every call,
                # and cost a quarter of the rate at 16 calls in flight (bench/).
                return await self.bus.call(msg)
            finally:
                slots.release()
        except asyncio.CancelledError:
            if task is not None and task in self._timed_out:
                self._timed_out.discard(task)
                task.uncancel()
                raise errors.Timeout(f"randomd did not answer {what} within "
                                     f"{timeout:g} s.") from None
            raise
        except dbus.DBusError as error:  # the library's own checks
            raise errors.InvalidArgument(f"Cannot call {what}: {error.text}") from None
        except (OSError, EOFError) as error:
            if self.closed:
                raise errors.Closed(f"The randomd client was closed before {what} was "
                                    "answered.") from None
            raise errors.Unavailable(f"Lost the connection to {self.label}: {error}.") from None
        finally:
            if task is not None:
                self._deadlines.pop(task, None)

    def _tick(self) -> None:
        """Cancel the calls past their deadline (they raise Timeout)."""
        self._ticker = None
        now = self.loop.time()
        for task, deadline in list(self._deadlines.items()):
            if deadline <= now and task not in self._timed_out:
                self._timed_out.add(task)
                task.cancel()
        if self._deadlines:
            self._ticker = self.loop.call_later(_TICK, self._tick)

    async def bus_call(self, member: str, signature: str, body: list[Any]) -> list[Any]:
        """Call the bus itself (org.freedesktop.DBus)."""
        if self.closed:
            raise errors.Closed("The randomd client is closed.")
        msg = dbus.Message(**api.BUS_DAEMON, member=member, signature=signature, body=body)
        reply = await self._send(msg, self.timeout, member)
        if reply.message_type == _ERROR:
            raise errors.from_dbus(reply.error_name or "", dbus.error_text(reply), member)
        return reply.body

    async def get_all(self, path: str, interface: str) -> tuple[dict[str, Any], str]:
        """Every property of *interface* at *path*, and the unique name that answered."""
        reply = await self.call(path, api.PROPERTIES_INTERFACE, "GetAll", "s", [interface],
                                what=f"GetAll({interface})")
        return unwrap(reply.body[0]), reply.sender

    async def get(self, name: str) -> Any:
        """One property of randomd's manager."""
        reply = await self.call(api.MANAGER_PATH, api.PROPERTIES_INTERFACE, "Get", "ss",
                                [api.MANAGER_INTERFACE, name], what=f"Get({name})")
        return unwrap(reply.body[0])

    # -- the API ---------------------------------------------------------

    async def quick(self, bits: int) -> int:
        check_uint(bits, "bits")
        reply = await self.call(api.MANAGER_PATH, api.MANAGER_INTERFACE, "Quick", "u", [bits])
        return int(reply.body[0])

    async def bytes(self, count: int) -> bytes:
        check_uint(count, "count")
        reply = await self.call(api.MANAGER_PATH, api.MANAGER_INTERFACE, "Bytes", "u", [count])
        return bytes(reply.body[0])

    async def slow(self, bits: int) -> JobBase:
        check_uint(bits, "bits")
        await self.subscribe()
        self._starting += 1
        starting = self.loop.create_task(self.call(
            api.MANAGER_PATH, api.MANAGER_INTERFACE, "Slow", "u", [bits], action=True))
        try:
            reply = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The job may start anyway: cancel it once its path is known.
            starting.add_done_callback(self._cancel_orphan)
            raise
        except BaseException:
            self._started()
            raise
        job = self._adopt(reply.body[0], reply.sender, bits, attached=False)
        self._started()
        return job

    def _cancel_orphan(self, starting: asyncio.Task) -> None:
        self._started()
        if not starting.cancelled() and starting.exception() is None:
            path = starting.result().body[0]
            self.spawn(self._quiet(self.call(path, api.JOB_INTERFACE, "Cancel", action=True)))

    @staticmethod
    async def _quiet(coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except errors.Error as error:
            log.debug("%s", error)

    def _started(self) -> None:
        self._starting -= 1
        if not self._starting:
            self._early.clear()

    async def job(self, ref: int | str) -> JobBase:
        try:
            path = job_path(ref)
        except (ValueError, TypeError) as error:
            raise errors.InvalidArgument(f"{error}.") from None
        existing = self._handles.get(path)
        if existing is not None and existing._service not in self._gone:
            return existing
        await self.subscribe()
        self._starting += 1
        try:
            props, service = await self.get_all(path, api.JOB_INTERFACE)
            existing = self._handles.get(path)
            if existing is not None and existing._service == service:
                return existing
            job = self._adopt(path, service, props["Bits"], attached=True, props=props)
        finally:
            self._started()
        if not job.ready:
            self.spawn(self._wait(job))
        return job

    async def managed_jobs(self) -> dict[str, dict[str, Any]]:
        """Every job randomd exports: path -> its properties, as the API names them."""
        reply = await self.call(api.MANAGER_PATH, api.OBJECT_MANAGER_INTERFACE, "GetManagedObjects")
        return {path: unwrap(interfaces[api.JOB_INTERFACE])
                for path, interfaces in reply.body[0].items() if api.JOB_INTERFACE in interfaces}

    async def jobs(self) -> list[JobInfo]:
        found = [JobInfo.from_properties(path, props)
                 for path, props in (await self.managed_jobs()).items()]
        return sorted(found, key=lambda info: info.id)

    async def cancel_all(self) -> None:
        await self.call(api.MANAGER_PATH, api.MANAGER_INTERFACE, "CancelAll", action=True)

    async def reload(self) -> None:
        await self.call(api.MANAGER_PATH, api.MANAGER_INTERFACE, "Reload", action=True)

    async def version(self) -> str:
        return str(await self.get("Version"))

    async def limits(self) -> Limits:
        props, _ = await self.get_all(api.MANAGER_PATH, api.MANAGER_INTERFACE)
        return Limits.from_properties(props)

    async def slow_bit_interval(self) -> float:
        return float(await self.get("SlowBitInterval"))

    async def set_slow_bit_interval(self, seconds: float) -> None:
        seconds = check_seconds(seconds)
        await self.call(api.MANAGER_PATH, api.PROPERTIES_INTERFACE, "Set", "ssv",
                        [api.MANAGER_INTERFACE, "SlowBitInterval", dbus.Variant("d", seconds)],
                        action=True, what="Set(SlowBitInterval)")

    # -- jobs --------------------------------------------------------------

    async def subscribe(self) -> None:
        """Add the match rules for jobs' signals, once, before the first job."""
        if self._subscribed is None:
            self._subscribed = asyncio.ensure_future(asyncio.gather(
                *(self.bus_call("AddMatch", "s", [rule]) for rule in _RULES)))
        try:
            await asyncio.shield(self._subscribed)
        except errors.Error:
            self._subscribed = None  # the next job tries again
            raise

    def _adopt(self, path: str, service: str, bits: int, attached: bool,
               props: dict[str, Any] | None = None) -> JobBase:
        job = self._job_class(self, path, service, bits, attached)
        if props is not None:
            job._initial(props)
        self._handles[path] = job
        if not job.ready:
            self._live[path] = job
        for msg in self._early.pop(path, ()):
            self._dispatch(job, msg)
        if service in self._gone:
            job._lose()
        return job

    def forget(self, job: JobBase) -> None:
        """*job* ended: no more signals for it."""
        if self._live.get(job.path) is job:
            del self._live[job.path]
            if self.on_idle is not None:
                self.on_idle()

    async def _wait(self, job: JobBase) -> None:
        """Get the end of a job this connection did not start, from Wait()."""
        try:
            reply = await self.call(job.path, api.JOB_INTERFACE, "Wait", action=True,
                                    timeout=None, slots=self._waits, what=f"Wait of job {job.id}")
        except errors.NotAuthorized as refusal:
            job._follow(refusal)  # another uid's job: its properties tell its end
        except errors.Closed:
            pass
        except errors.Unavailable as error:
            if error.dbus_name == api.NO_REPLY_ERROR or job._service in self._gone:
                job._lose()
            else:
                job._end(State.FAILED, exception=error)
        except errors.Error as error:
            job._end(_ERROR_STATES.get(type(error), State.FAILED), exception=error)
        else:
            job._end(State.COMPLETED, number=int(reply.body[0]))

    async def cancel(self, job: JobBase) -> None:
        await self.call(job.path, api.JOB_INTERFACE, "Cancel", action=True,
                        what=f"Cancel of job {job.id}")

    def _on_message(self, msg: Any) -> None:
        """The bus library's message handler (returns None: it never answers calls)."""
        if msg.message_type != _SIGNAL:
            return None
        member = msg.member
        if member == "Finished" or member == "PropertiesChanged":
            job = self._live.get(msg.path)
            if job is not None:
                self._dispatch(job, msg)
            elif self._starting and msg.path.startswith(api.JOBS_PATH):
                self._early.setdefault(msg.path, []).append(msg)
        elif (member == "NameOwnerChanged" and msg.sender == api.BUS_DAEMON_NAME
              and msg.body[0] == api.BUS_NAME):
            old = msg.body[1]
            if old:
                self._gone.add(old)
                for job in [job for job in self._live.values() if job._service == old]:
                    job._lose()
        return None

    @staticmethod
    def _dispatch(job: JobBase, msg: Any) -> None:
        if msg.sender != job._service:
            return  # anyone may send a signal; only the instance that has the job counts
        if msg.member == "Finished":
            if msg.interface == api.JOB_INTERFACE and msg.signature == "sss":
                job._on_finished(*msg.body)
        elif msg.interface == api.PROPERTIES_INTERFACE and msg.body[0] == api.JOB_INTERFACE:
            job._on_properties(unwrap(msg.body[1]))

    async def _watch_bus(self) -> None:
        """The bus connection itself is lost: every unfinished job with it."""
        with contextlib.suppress(Exception):
            await self.bus.wait_for_disconnect()
        if not self.closed:
            for job in list(self._live.values()):
                job._lose(f"The connection to {self.label} was lost before job {job.id} ended.")


Callback = Callable[[Any], Any]


class JobBase:
    """A job's state as the client knows it, updated in the client's loop.

    Everything starting with an underscore runs in the loop's thread.
    """

    def __init__(self, conn: Connection, path: str, service: str, bits: int,
                 attached: bool) -> None:
        self._conn = conn
        self.path = path
        self.id = int(path.rsplit("/", 1)[-1])
        self.bits = bits
        self._service = service  # the unique name of the randomd that has the job
        self._attached = attached  # not started by this connection: its end comes from Wait
        self.state: State | str = State.RUNNING
        self.bits_done = 0
        self.progress = 0.0
        self._number: int | None = None
        self._exception: errors.Error | None = None
        self._ended = False
        self._expiry: asyncio.TimerHandle | None = None
        self._expiring = False
        self._refusal: errors.NotAuthorized | None = None
        self._daemon_state = State.RUNNING
        self._callbacks: list[Callback] = []
        self._progress_callbacks: list[Callback] = []
        self._ended_event = asyncio.Event()
        self._settled = asyncio.Event()  # ended, closed, or its number refused

    # -- what anyone may read ------------------------------------------------

    @property
    def ready(self) -> bool:
        """The job has ended (completed, failed, cancelled or expired)."""
        return self._ended

    @property
    def error(self) -> bool:
        """The job ended without a number."""
        return self._ended and self._exception is not None

    @property
    def expired(self) -> bool:
        """It ended expired on randomd, or its local expiry (set_expiry) passed first."""
        return self._expiring or self.state == State.EXPIRED

    def __repr__(self) -> str:
        return (f"<{type(self).__module__}.{type(self).__name__} {self.id} {self.state} "
                f"{self.bits_done}/{self.bits} bits>")

    # -- in the loop ----------------------------------------------------------

    def _initial(self, props: dict[str, Any]) -> None:
        """The properties read when attaching."""
        self.bits_done = props.get("BitsDone", 0)
        self.progress = props.get("Progress", 0.0)
        self._daemon_state = props.get("State", State.RUNNING)

    def _on_properties(self, changed: dict[str, Any]) -> None:
        if self._ended:
            return
        stepped = "BitsDone" in changed and changed["BitsDone"] != self.bits_done
        if stepped:
            self.bits_done = changed["BitsDone"]
        if "Progress" in changed:
            self.progress = changed["Progress"]
        if "State" in changed:
            self._daemon_state = changed["State"]
        if stepped:
            self._progressed()
        if self._refusal is not None and self._daemon_state != State.RUNNING:
            self._end(self._daemon_state, exception=self._refusal)

    def _on_finished(self, state: str, number: str, error: str) -> None:
        if self._ended or self._expiring:
            return
        if state == State.COMPLETED:
            self._end(State.COMPLETED, number=int(number))
        else:
            self._end(state, exception=ending(self.id, state, error))

    def _follow(self, refusal: errors.NotAuthorized) -> None:
        """Wait was refused: the job's end is seen in its properties, without its number."""
        self._refusal = refusal
        self._settled.set()
        if self._daemon_state != State.RUNNING:
            self._end(self._daemon_state, exception=refusal)

    def _lose(self, message: str | None = None) -> None:
        self._end(State.FAILED, exception=errors.JobLost(
            message or f"randomd left the bus before job {self.id} ended; the job is lost."))

    def _progressed(self) -> None:
        for func in list(self._progress_callbacks):
            self._run_callback(func)
        self._on_step()

    def _end(self, state: str, number: int | None = None,
             exception: errors.Error | None = None) -> None:
        if self._ended:
            return
        if state == State.COMPLETED and self.bits_done != self.bits:
            # randomd announces the last step with the end; make sure it is seen.
            self.bits_done, self.progress = self.bits, 1.0
            self._progressed()
        self.state = as_state(state)
        self._number = number
        self._exception = exception
        self._ended = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._conn.forget(self)
        self._ended_event.set()
        self._settled.set()
        self._notify_end()
        callbacks, self._callbacks, self._progress_callbacks = self._callbacks, [], []
        for func in callbacks:
            self._run_callback(func)

    def _close(self) -> None:
        """The client was closed before the job ended: wake every waiter."""
        self._ended_event.set()
        self._settled.set()

    def _notify_end(self) -> None:
        """The job ended (a hook of the public classes)."""

    def _on_step(self) -> None:
        """A progress step (a hook of the public classes)."""

    def _run_callback(self, func: Callback) -> None:
        try:
            func(self)
        except Exception:
            log.exception("a callback of randomd job %d raised", self.id)

    def _add_callback(self, func: Callback) -> None:
        if self._ended:
            self._run_callback(func)
        else:
            self._callbacks.append(func)

    def _add_progress_callback(self, func: Callback) -> None:
        if not self._ended:
            self._progress_callbacks.append(func)

    def _set_expiry(self, seconds: float) -> None:
        if self._ended or self._expiring:
            return
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = self._conn.loop.call_later(max(0.0, seconds), self._expire)

    def _expire(self) -> None:
        self._expiry = None
        if self._ended or self._expiring:
            return
        self._expiring = True
        self._conn.spawn(self._cancel_expired())

    async def _cancel_expired(self) -> None:
        """The local expiry passed: cancel the job on randomd, then end it as expired."""
        try:
            await self._conn.cancel(self)
        except errors.Error as error:
            log.debug("cancelling expired job %d: %s", self.id, error)
        self._end(State.EXPIRED, exception=errors.Expired(
            f"Job {self.id} expired: it did not end within the time set_expiry() gave it."))

    async def _cancel(self) -> None:
        """Cancel on randomd and return once the end is seen."""
        if self._ended:
            return
        await self._conn.cancel(self)
        await self._wait_end()

    async def _wait_end(self) -> None:
        await self._ended_event.wait()
        if not self._ended:
            raise errors.Closed(f"The randomd client was closed before job {self.id} ended.")

    async def _collect(self) -> int:
        """The number; NotAuthorized as soon as randomd refuses it, without waiting for the end."""
        await self._settled.wait()
        if self._refusal is not None and not self._ended:
            raise self._refusal
        if not self._ended:
            raise errors.Closed(f"The randomd client was closed before job {self.id} ended.")
        return self._value()

    async def _info(self) -> JobInfo:
        props, _ = await self._conn.get_all(self.path, api.JOB_INTERFACE)
        return JobInfo.from_properties(self.path, props)

    def _value(self) -> int:
        """The number of an ended job, or its error."""
        if self._exception is not None:
            raise self._exception
        assert self._number is not None
        return self._number
