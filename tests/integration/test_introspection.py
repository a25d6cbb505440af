"""What the daemon introspects is what conf/dbus-1/interfaces ships, member by member."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import harness
import pytest
from clients import call

from randomd import api

INTERFACES = harness.REPO / "conf/dbus-1/interfaces"
STANDARD = {"org.freedesktop.DBus.Peer", "org.freedesktop.DBus.Introspectable",
            "org.freedesktop.DBus.Properties"}


def members(interface: ET.Element) -> dict[str, tuple]:
    """Every member of an <interface>, keyed by kind and name."""
    found = {}
    for element in interface:
        if element.tag == "annotation":
            continue
        args = tuple((a.get("type"), a.get("name"), a.get("direction", "out" if
                      element.tag == "method" else None)) for a in element.iter("arg"))
        extra = (element.get("type"), element.get("access"),
                 tuple(a.get("value") for a in element.iter("annotation")))
        found[f"{element.tag} {element.get('name')}"] = (args, extra)
    return found


def shipped(name: str) -> dict[str, tuple]:
    root = ET.parse(INTERFACES / f"{name}.xml").getroot()
    (interface,) = [i for i in root.iter("interface") if i.get("name") == name]
    return members(interface)


async def introspect(bus, path: str) -> ET.Element:
    (xml,) = await call(bus, "Introspect", path=path,
                        interface="org.freedesktop.DBus.Introspectable")
    return ET.fromstring(xml)


async def test_the_manager_introspects_as_shipped(randomd, client):
    root = await introspect(client, api.MANAGER_PATH)
    (interface,) = [i for i in root.iter("interface") if i.get("name") == api.MANAGER_INTERFACE]
    assert members(interface) == shipped(api.MANAGER_INTERFACE)


async def test_the_manager_has_the_standard_interfaces_and_object_manager(randomd, client):
    root = await introspect(client, api.MANAGER_PATH)
    names = {i.get("name") for i in root.iter("interface")}
    assert names == STANDARD | {"org.freedesktop.DBus.ObjectManager", api.MANAGER_INTERFACE}


async def test_a_job_introspects_as_shipped(randomd, client):
    (path,) = await call(client, "Slow", "u", [1])
    root = await introspect(client, path)
    (interface,) = [i for i in root.iter("interface") if i.get("name") == api.JOB_INTERFACE]
    assert members(interface) == shipped(api.JOB_INTERFACE)


@pytest.mark.parametrize("path, child", [("/", "org"), ("/org/randomd", "Random1")])
async def test_parent_paths_lead_to_the_manager(randomd, client, path, child):
    root = await introspect(client, path)
    assert child in [node.get("name") for node in root.iter("node") if node.get("name")]


def test_busctl_introspect_shows_the_api(randomd, system_bus):
    result = harness.busctl(system_bus, "introspect", api.BUS_NAME, api.MANAGER_PATH,
                            user=harness.TEST_USER)
    assert result.returncode == 0, result.stderr
    for member in (".Quick", ".Bytes", ".Slow", ".CancelAll", ".SlowBitInterval", ".Version"):
        assert member in result.stdout
