"""How randomd's objects declare their D-Bus interfaces, and what a handler is given.

A subclass of Interface declares its methods with @method, its properties
with @dbus_property and its signals as class attributes of type Signal; the
object tree (tree.py) dispatches to them and introspection.py describes
them.  A handler gets a Call, which names the caller.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from .library import MessageFlag, Variant

__all__ = ["Call", "Method", "Property", "Signal", "method", "dbus_property", "Interface",
           "complete_types"]

_F = TypeVar("_F", bound=Callable[..., Any])
_INTERACTIVE = MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION.value


# Plain classes with __slots__, not dataclasses: a dataclass costs about half a
# millisecond of start-up to define, and these four are all randomd needs here.

class Call:
    """An incoming method call as a handler sees it: who asks, and how."""

    __slots__ = ("message",)

    def __init__(self, message: Any) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"Call(message={self.message!r})"

    @property
    def sender(self) -> str:
        return self.message.sender

    @property
    def interactive(self) -> bool:
        """True when the caller allows polkit to ask for a password."""
        return bool(int(self.message.flags) & _INTERACTIVE)


class Method:
    """A D-Bus method: its signatures, argument names and the function behind it."""

    __slots__ = ("name", "in_signature", "out_signature", "in_names", "out_names", "function",
                 "is_async")

    def __init__(self, name: str, in_signature: str, out_signature: str,
                 in_names: tuple[str, ...], out_names: tuple[str, ...],
                 function: Callable[..., Any]) -> None:
        self.name = name
        self.in_signature = in_signature
        self.out_signature = out_signature
        self.in_names = in_names
        self.out_names = out_names
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function)


class Property:
    """A D-Bus property: its signature, getter, setter (if writable) and change signal."""

    __slots__ = ("name", "signature", "getter", "setter", "emits_change")

    def __init__(self, name: str, signature: str, getter: Callable[[Any], Any],
                 setter: Callable[..., Any] | None = None, emits_change: str = "false") -> None:
        self.name = name
        self.signature = signature
        self.getter = getter
        self.setter = setter
        self.emits_change = emits_change  # "true", "false" or "const", as in introspection


class Signal:
    """A D-Bus signal: its name, signature and argument names."""

    __slots__ = ("name", "signature", "names")

    def __init__(self, name: str, signature: str, names: tuple[str, ...]) -> None:
        self.name = name
        self.signature = signature
        self.names = names


def method(in_signature: str = "", out_signature: str = "",
           out_names: tuple[str, ...] = ()) -> Callable[[_F], _F]:
    """Declare a D-Bus method; the function takes (self, call, *args)."""
    def decorate(function: _F) -> _F:
        in_names = tuple(inspect.signature(function).parameters)[2:]
        # A function may carry attributes, which no Callable type can declare.
        function.dbus_method = Method(  # type: ignore[attr-defined]
            function.__name__, in_signature, out_signature, in_names, out_names, function)
        return function
    return decorate


class dbus_property:  # noqa: N801 - reads like the decorator it is
    """Declare a D-Bus property from its getter; ``@Name.setter`` adds an async setter.

    A setter takes (self, call, value); it validates and authorizes, and the
    object tree announces the change and replies.
    """

    def __init__(self, signature: str, emits_change: str = "false", name: str = "") -> None:
        self.signature = signature
        self.emits_change = emits_change
        self.name = name  # when the Python name cannot be the D-Bus name
        self.dbus_property: Property | None = None

    def __call__(self, getter: Callable[[Any], Any]) -> dbus_property:
        self.dbus_property = Property(self.name or getter.__name__, self.signature, getter,
                                      emits_change=self.emits_change)
        return self

    def setter(self, setter: Callable[..., Any]) -> dbus_property:
        declared = self.declared
        self.dbus_property = Property(declared.name, self.signature, declared.getter, setter,
                                      self.emits_change)
        return self

    @property
    def declared(self) -> Property:
        """The Property, once a getter was decorated."""
        assert self.dbus_property is not None, "@dbus_property(...) decorates a getter"
        return self.dbus_property


class Interface:
    """One D-Bus interface of one object; subclasses declare its members.

    Subclasses pass ``name=`` and declare members with @method,
    @dbus_property and class attributes of type Signal.
    """

    name: ClassVar[str]
    methods: ClassVar[dict[str, Method]]
    properties: ClassVar[dict[str, Property]]
    signals: ClassVar[dict[str, Signal]]

    def __init_subclass__(cls, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name
        members = vars(cls).values()
        cls.methods = {m.dbus_method.name: m.dbus_method
                       for m in members if hasattr(m, "dbus_method")}
        cls.properties = {p.declared.name: p.declared
                          for p in members if isinstance(p, dbus_property)}
        cls.signals = {s.name: s for s in members if isinstance(s, Signal)}

    def get(self, name: str) -> Variant:
        prop = self.properties[name]
        return Variant(prop.signature, prop.getter(self))

    def get_all(self) -> dict[str, Variant]:
        return {name: self.get(name) for name in self.properties}


def complete_types(signature: str) -> list[str]:
    """Split a D-Bus signature into its complete types."""
    types, depth, start = [], 0, 0
    for index, char in enumerate(signature):
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        if depth == 0 and char != "a":
            types.append(signature[start:index + 1])
            start = index + 1
    return types
