"""A system whose only bus is dbus-broker: no dbus, no dbus-daemon package.

The package depends on `default-dbus-system-bus | dbus-system-bus`, as
Debian's D-Bus packaging provides for, so dbus-broker alone satisfies it.
A container of its own (packaging/testbed's broker-only image) on the
release of the environment.
"""

import re

import pytest

pytestmark = pytest.mark.system

QUICK = ["busctl", "call", "org.randomd.Random1", "/org/randomd/Random1", "org.randomd.Random1"]


@pytest.fixture(scope="module")
def bed(container, new_debs, testbed_module):
    spec = testbed_module.broker_only_spec()
    with container(debs=new_debs, spec=spec) as bed:
        yield bed


def status(bed, package):
    r = bed.run(["dpkg-query", "-W", "-f=${db:Status-Status}", package], check=False)
    return r.stdout.strip() or "not-installed"


def test_has_no_dbus_daemon(bed):
    assert status(bed, "dbus-daemon") == "not-installed"
    assert status(bed, "dbus") == "not-installed"
    assert status(bed, "dbus-broker") == "installed"
    assert bed.system_bus_daemons() and all(
        d.startswith("dbus-broker") for d in bed.system_bus_daemons()
    ), bed.system_bus_daemons()


def test_randomd_installs_and_is_bus_activated(bed):
    assert status(bed, "randomd") == "installed"
    out = bed.run([*QUICK, "Quick", "u", "64"], user=bed.user).stdout
    assert re.fullmatch(r's "[0-9]+"', out.strip()), out
    assert bed.systemctl("is-active", "randomd.service").stdout.strip() == "active"


def test_randomctl_works(bed):
    out = bed.run(["randomctl", "quick", "16"], user=bed.user).stdout
    assert 0 <= int(out) < 2**16
