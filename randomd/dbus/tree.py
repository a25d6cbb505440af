"""Exported objects, and the one place where method calls become replies.

randomd answers every method call itself, from a message handler placed in
front of the library's dispatch, because the libraries' own dispatch leaks
tracebacks to callers, logs intended errors as crashes, sends no reply when an
async method is cancelled, hides the caller from methods, has no async
property setters and emits ObjectManager signals from the wrong path.

Here, each call is routed by path, interface and member; its signature is
checked; the handler (sync or async) gets a Call that names the caller; any
failure becomes one named D-Bus error with one sentence, and every call that
wants a reply gets exactly one.  The standard interfaces (Properties,
Introspectable, Peer, ObjectManager) are answered here too; the objects'
declarations are in interface.py, the introspection XML in introspection.py.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from .. import api, errors
from .connection import Bus
from .interface import Call, Interface, Method, Property, complete_types
from .introspection import introspection_xml
from .library import Message, MessageFlag, MessageType, Variant, signature_tree

__all__ = ["ObjectTree"]

log = logging.getLogger("randomd.service")

_PROPERTIES = api.PROPERTIES_INTERFACE
_INTROSPECTABLE = api.INTROSPECTABLE_INTERFACE
_PEER = api.PEER_INTERFACE
_OBJECT_MANAGER = api.OBJECT_MANAGER_INTERFACE
_NO_REPLY = MessageFlag.NO_REPLY_EXPECTED.value
_METHOD_CALL = MessageType.METHOD_CALL
_SIGNAL = MessageType.SIGNAL
_METHOD_RETURN = MessageType.METHOD_RETURN
_NO_REPLY_FLAGS = MessageFlag.NO_REPLY_EXPECTED
# Results of these types are never awaitable: no need to ask inspect.
_PLAIN_TYPES = frozenset({str, int, float, bool, bytes, list, dict, tuple, type(None)})


class ObjectTree:
    """The objects randomd exports on one connection, and their dispatch.

    *manager_path* carries org.freedesktop.DBus.ObjectManager for every
    object below it.
    """

    def __init__(self, bus: Bus, manager_path: str,
                 no_object: Callable[[str], errors.RandomdError] | None = None) -> None:
        self._bus = bus
        self._manager_path = manager_path
        self._no_object = no_object or _unknown_object
        # When the last call came, or the last call that waited was answered.
        self.last_call = _monotonic()
        self._objects: dict[str, dict[str, Interface]] = {}
        self._tasks: set[asyncio.Task] = set()
        bus.add_message_handler(self._on_message)

    # -- exporting -----------------------------------------------------

    def export(self, path: str, *interfaces: Interface) -> None:
        """Export *interfaces* at *path*; below the manager, announce them."""
        self._objects[path] = {interface.name: interface for interface in interfaces}
        if self._is_managed(path):
            added = {interface.name: interface.get_all() for interface in interfaces}
            self.emit(self._manager_path, _OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}",
                      [path, added])

    def unexport(self, path: str) -> None:
        """Remove the object at *path*; below the manager, announce it."""
        interfaces = self._objects.pop(path, None)
        if interfaces is not None and self._is_managed(path):
            self.emit(self._manager_path, _OBJECT_MANAGER, "InterfacesRemoved", "oas",
                      [path, list(interfaces)])

    def _is_managed(self, path: str) -> bool:
        return path.startswith(self._manager_path + "/")

    # -- sending -------------------------------------------------------

    def emit(self, path: str, interface: str, member: str, signature: str, body: list[Any],
             destination: str | None = None) -> None:
        """Send a signal; with *destination* it is unicast to that name only."""
        # NO_REPLY_EXPECTED: the bus answers nothing when the destination has left.
        self._bus.post(Message(message_type=_SIGNAL, path=path, interface=interface,
                               member=member, signature=signature, body=body,
                               destination=destination, flags=_NO_REPLY_FLAGS))

    def properties_changed(self, path: str, interface: Interface, names: list[str]) -> None:
        """Announce the current values of *names* with PropertiesChanged."""
        changed = {name: interface.get(name) for name in names}
        self.emit(path, _PROPERTIES, "PropertiesChanged", "sa{sv}as",
                  [interface.name, changed, []])

    def congested(self) -> bool:
        """True while the bus does not keep up with what randomd sends."""
        return self._bus.writer.congested

    def calls_in_flight(self) -> int:
        """How many calls are still being handled (waiting for polkit or for a job)."""
        return len(self._tasks)

    async def cancel_calls(self) -> None:
        """Cancel the calls still being handled; each still gets its reply."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- dispatch ------------------------------------------------------

    def _on_message(self, msg: Any) -> bool:
        if msg.message_type is not _METHOD_CALL:
            return False
        self.last_call = _monotonic()  # the clock of loop.time()
        # The common case first: a method of an exported interface, named
        # with its interface and called with its signature.  Anything else
        # takes _route, which also explains what is wrong.
        interface = self._objects.get(msg.path, _NOTHING).get(msg.interface)
        method_ = interface.methods.get(msg.member) if interface is not None else None
        try:
            if method_ is not None and msg.signature == method_.in_signature:
                out_signature = method_.out_signature
                result = method_.function(interface, Call(msg), *msg.body)
                if method_.is_async:
                    self._reply_later(msg, out_signature, result)
                    return True
            else:
                out_signature, result = self._route(Call(msg))
        except Exception as error:  # every failure is answered, by name
            self._reply_error(msg, error)
            return True
        if type(result) not in _PLAIN_TYPES and inspect.isawaitable(result):
            self._reply_later(msg, out_signature, result)
        else:
            self._reply(msg, out_signature, result)
        return True

    def _reply_later(self, msg: Any, out_signature: str, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(partial(self._reply_task, msg, out_signature))

    def _reply_task(self, msg: Any, out_signature: str, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self.last_call = _monotonic()  # idle time counts from the answer
        if task.cancelled():
            self._reply_error(msg, errors.ShuttingDown("randomd is shutting down."))
        elif (error := task.exception()) is not None:
            self._reply_error(msg, error)
        else:
            self._reply(msg, out_signature, task.result())

    def _reply(self, msg: Any, out_signature: str, result: Any) -> None:
        if int(msg.flags) & _NO_REPLY:
            return
        if not out_signature:
            body = []
        elif _is_single_type(out_signature):
            body = [result]
        else:
            body = list(result)
        assert signature_tree is not None  # connect() refused a library without it
        try:
            signature_tree(out_signature).verify(body)
            self._bus.post(Message(message_type=_METHOD_RETURN, reply_serial=msg.serial,
                                   destination=msg.sender, signature=out_signature, body=body))
        except Exception as error:  # a handler returned a value of the wrong type
            self._reply_error(msg, error)

    def _reply_error(self, msg: Any, error: BaseException) -> None:
        if isinstance(error, errors.RandomdError):
            log.debug("%s.%s from %s: %s", msg.interface, msg.member, msg.sender, error)
        else:
            log.error("%s.%s from %s failed", msg.interface, msg.member, msg.sender,
                      exc_info=error, extra={"RANDOMD_SENDER": msg.sender})
            error = errors.Failed("Internal error in randomd; its log has the details.")
        if not int(msg.flags) & _NO_REPLY:
            # ASCII only: the text may quote the caller's own words, and
            # dbus-fast 1.84 writes a string's length in characters, not
            # bytes (dbus-fast PR 261): the bus would drop randomd.
            text = str(error).encode("ascii", "backslashreplace").decode("ascii")
            self._bus.post(Message.new_error(msg, error.dbus_name, text))

    def _route(self, call: Call) -> tuple[str, Any]:
        msg = call.message
        standard = _STANDARD_HANDLERS.get((msg.interface, msg.member))
        if standard is not None:
            handler, in_signature, out_signature = standard
            _check_signature(msg, in_signature)
            return out_signature, handler(self, call, *msg.body)
        interfaces = self._objects.get(msg.path)
        if interfaces is None:
            raise self._no_object(msg.path)
        method_ = _find_method(interfaces, msg)
        _check_signature(msg, method_.in_signature)
        owner = interfaces[msg.interface] if msg.interface else _owner_of(interfaces, method_)
        return method_.out_signature, method_.function(owner, call, *msg.body)

    # -- the standard interfaces ---------------------------------------

    def _interfaces_at(self, path: str) -> dict[str, Interface]:
        interfaces = self._objects.get(path)
        if interfaces is None:
            raise self._no_object(path)
        return interfaces

    def _find_property(self, path: str, interface_name: str,
                       name: str) -> tuple[Interface, Property]:
        interfaces = self._interfaces_at(path)
        candidates = [interfaces[interface_name]] if interface_name in interfaces else (
            list(interfaces.values()) if not interface_name else [])
        if interface_name and not candidates:
            raise errors.UnknownInterface(f"Object {path} has no interface {interface_name}.")
        for interface in candidates:
            if name in interface.properties:
                return interface, interface.properties[name]
        raise errors.UnknownProperty(f"Object {path} has no property {name!r}.")

    def _get(self, call: Call, interface_name: str, name: str) -> Variant:
        interface, prop = self._find_property(call.message.path, interface_name, name)
        return interface.get(prop.name)

    def _get_all(self, call: Call, interface_name: str) -> dict[str, Variant]:
        interfaces = self._interfaces_at(call.message.path)
        if not interface_name:
            return {k: v for i in interfaces.values() for k, v in i.get_all().items()}
        if interface_name not in interfaces:
            raise errors.UnknownInterface(
                f"Object {call.message.path} has no interface {interface_name}.")
        return interfaces[interface_name].get_all()

    def _set(self, call: Call, interface_name: str, name: str, value: Variant) -> Any:
        interface, prop = self._find_property(call.message.path, interface_name, name)
        setter = prop.setter
        if setter is None:
            raise errors.PropertyReadOnly(f"Property {name} is read-only.")
        if value.signature != prop.signature:
            raise errors.InvalidArgs(
                f"Property {name} has type '{prop.signature}', not '{value.signature}'.")
        return self._set_and_announce(call, interface, prop, setter, value.value)

    async def _set_and_announce(self, call: Call, interface: Interface, prop: Property,
                                setter: Callable[..., Any], value: Any) -> None:
        await setter(interface, call, value)
        if prop.emits_change == "true":
            self.properties_changed(call.message.path, interface, [prop.name])

    def _introspect(self, call: Call) -> str:
        path = call.message.path
        interfaces = self._objects.get(path, {})
        children = self._children(path)
        if not interfaces and not children and path != "/":
            raise self._no_object(path)
        return introspection_xml(list(interfaces.values()), children,
                                 object_manager=path == self._manager_path)

    def _children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix):].split("/", 1)[0] for p in self._objects if p.startswith(prefix)}
        return sorted(names, key=lambda n: (len(n), n))

    def _ping(self, call: Call) -> None:
        return None

    def _machine_id(self, call: Call) -> str:
        for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
            try:
                with open(path, encoding="ascii") as file:
                    return file.read().strip()
            except OSError:
                continue
        raise errors.Failed("This machine has no machine ID.")

    def _managed_objects(self, call: Call) -> dict[str, dict[str, dict[str, Variant]]]:
        if call.message.path != self._manager_path:
            raise errors.UnknownMethod(
                f"Object {call.message.path} does not implement {_OBJECT_MANAGER}.")
        return {path: {name: i.get_all() for name, i in interfaces.items()}
                for path, interfaces in self._objects.items() if self._is_managed(path)}


_STANDARD_HANDLERS: dict[tuple[str, str], tuple[Callable[..., Any], str, str]] = {
    (_PROPERTIES, "Get"): (ObjectTree._get, "ss", "v"),
    (_PROPERTIES, "GetAll"): (ObjectTree._get_all, "s", "a{sv}"),
    (_PROPERTIES, "Set"): (ObjectTree._set, "ssv", ""),
    (_INTROSPECTABLE, "Introspect"): (ObjectTree._introspect, "", "s"),
    (_PEER, "Ping"): (ObjectTree._ping, "", ""),
    (_PEER, "GetMachineId"): (ObjectTree._machine_id, "", "s"),
    (_OBJECT_MANAGER, "GetManagedObjects"): (ObjectTree._managed_objects, "", "a{oa{sa{sv}}}"),
}
_STANDARD_INTERFACES = {interface for interface, _ in _STANDARD_HANDLERS}


_NOTHING: dict[str, Interface] = {}
_monotonic = time.monotonic
_SINGLE_TYPE: dict[str, bool] = {}


def _is_single_type(signature: str) -> bool:
    """Whether *signature* is one complete type (cached: replies ask it every time)."""
    single = _SINGLE_TYPE.get(signature)
    if single is None:
        single = _SINGLE_TYPE[signature] = len(complete_types(signature)) == 1
    return single


def _unknown_object(path: str) -> errors.RandomdError:
    return errors.UnknownObject(f"No object at path {path}.")


def _find_method(interfaces: dict[str, Interface], msg: Any) -> Method:
    if msg.interface in _STANDARD_INTERFACES:
        raise errors.UnknownMethod(f"{msg.interface} has no method {msg.member}.")
    if msg.interface:
        interface = interfaces.get(msg.interface)
        if interface is None:
            raise errors.UnknownInterface(f"Object {msg.path} has no interface {msg.interface}.")
        found = interface.methods.get(msg.member)
    else:
        found = next((i.methods[msg.member] for i in interfaces.values()
                      if msg.member in i.methods), None)
    if found is None:
        raise errors.UnknownMethod(f"Object {msg.path} has no method {msg.member!r}.")
    return found


def _owner_of(interfaces: dict[str, Interface], method_: Method) -> Interface:
    return next(i for i in interfaces.values() if i.methods.get(method_.name) is method_)


def _check_signature(msg: Any, expected: str) -> None:
    if msg.signature != expected:
        raise errors.InvalidArgs(
            f"{msg.member} takes arguments of type '{expected}', not '{msg.signature}'.")
