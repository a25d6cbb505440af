"""The Introspect answer: an object's interfaces and children as introspection XML.

The standard interfaces every object has (Peer, Introspectable, Properties,
and ObjectManager on the manager's path) are written out here once; randomd's
own interfaces are written from their declarations (interface.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from .interface import Interface, complete_types

__all__ = ["introspection_xml", "quoteattr"]

_STANDARD_XML = """\
 <interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId">
   <arg type="s" name="machine_uuid" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect">
   <arg name="xml_data" type="s" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Properties">
  <method name="Get">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="out" type="v"/>
  </method>
  <method name="GetAll">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="props" direction="out" type="a{sv}"/>
  </method>
  <method name="Set">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="in" type="v"/>
  </method>
  <signal name="PropertiesChanged">
   <arg type="s" name="interface_name"/>
   <arg type="a{sv}" name="changed_properties"/>
   <arg type="as" name="invalidated_properties"/>
  </signal>
 </interface>
"""

_OBJECT_MANAGER_XML = """\
 <interface name="org.freedesktop.DBus.ObjectManager">
  <method name="GetManagedObjects">
   <arg type="a{oa{sa{sv}}}" name="object_paths_interfaces_and_properties" direction="out"/>
  </method>
  <signal name="InterfacesAdded">
   <arg type="o" name="object_path"/>
   <arg type="a{sa{sv}}" name="interfaces_and_properties"/>
  </signal>
  <signal name="InterfacesRemoved">
   <arg type="o" name="object_path"/>
   <arg type="as" name="interfaces"/>
  </signal>
 </interface>
"""

_DOCTYPE = ('<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n'
            '"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n')


def quoteattr(data: str) -> str:
    """*data* as a quoted XML attribute value, as xml.sax.saxutils.quoteattr makes it.

    (xml.sax.saxutils imports urllib.request, http.client and email: a tenth
    of randomd's start-up, for this one function.)
    """
    data = data.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
    data = data.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' not in data:
        return f'"{data}"'
    if "'" not in data:
        return f"'{data}'"
    escaped = data.replace('"', "&quot;")
    return f'"{escaped}"'


def introspection_xml(interfaces: list[Interface], children: list[str],
                      object_manager: bool = False) -> str:
    """The Introspect answer for one object."""
    parts = [_DOCTYPE, "<node>\n", _STANDARD_XML]
    if object_manager:
        parts.append(_OBJECT_MANAGER_XML)
    parts.extend(_interface_xml(type(interface)) for interface in interfaces)
    parts.extend(f" <node name={quoteattr(child)}/>\n" for child in children)
    parts.append("</node>\n")
    return "".join(parts)


def _interface_xml(cls: type[Interface]) -> str:
    lines = [f" <interface name={quoteattr(cls.name)}>"]
    for m in cls.methods.values():
        lines.append(f"  <method name={quoteattr(m.name)}>")
        lines += _args(m.in_signature, m.in_names, ' direction="in"')
        lines += _args(m.out_signature, m.out_names, ' direction="out"')
        lines.append("  </method>")
    for s in cls.signals.values():
        lines.append(f"  <signal name={quoteattr(s.name)}>")
        lines += _args(s.signature, s.names, "")
        lines.append("  </signal>")
    for p in cls.properties.values():
        access = "readwrite" if p.setter else "read"
        lines.append(f'  <property name="{p.name}" type="{p.signature}" access="{access}">')
        lines.append('   <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" '
                     f'value="{p.emits_change}"/>')
        lines.append("  </property>")
    lines.append(" </interface>\n")
    return "\n".join(lines)


def _args(signature: str, names: Sequence[str], direction: str) -> list[str]:
    """An <arg> for each complete type of *signature*.  Names are declared apart
    from it and may be fewer: an argument without one gets no name attribute,
    as the specification allows."""
    types = complete_types(signature)
    named = list(names[:len(types)]) + [""] * (len(types) - len(names))
    return [f'   <arg type="{t}"{f" name={quoteattr(n)}" if n else ""}{direction}/>'
            for t, n in zip(types, named, strict=True)]
