"""Fixtures: the system-like bus, randomd on it (on each bus library), clients."""

from __future__ import annotations

import harness
import pytest
from polkit_harness import Polkitd, policy_bus
from scenarios import CLIENT_CONFIG, Scenario

from randomd import dbus


def pytest_terminal_summary(terminalreporter) -> None:
    # Not a report header: pytest asks for those before it loads this file.
    if harness.REPO != harness.CHECKOUT:
        terminalreporter.write_line(
            f"randomd ran under uid {harness.DAEMON_USER} from a world-readable copy of this "
            f"checkout in {harness.REPO}, removed at exit: that uid cannot read the checkout")


@pytest.fixture(scope="session", autouse=True)
def users() -> None:
    harness.ensure_user(harness.DAEMON_USER)
    harness.ensure_user(harness.TEST_USER)


@pytest.fixture(scope="session", autouse=True)
def daemon_starts(users) -> None:
    """Stop the whole run at once if randomd cannot start under its uid.

    Otherwise every test would wait for it in turn and fail with the same cause.
    """
    for library in harness.LIBRARIES:
        problem = harness.start_problem(library)
        if problem:
            pytest.exit(f"{problem}\nNo integration test was run.",
                        returncode=pytest.ExitCode.TESTS_FAILED)


@pytest.fixture(scope="session")
def system_bus(users):
    bus = harness.SystemBus()
    yield bus
    bus.stop()


# Lets every method call through to randomd, so that randomd itself (not the
# shipped policy) answers the calls the bad-input and fuzz tests make.
OPEN_POLICY = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy context="default">
    <allow send_destination="org.randomd.Random1"/>
  </policy>
</busconfig>
"""

@pytest.fixture(scope="module")
def open_bus(users, tmp_path_factory):
    """A system-like bus whose policy lets any method call reach randomd."""
    policy_dir = tmp_path_factory.mktemp("open-policy")
    (policy_dir / "open.conf").write_text(OPEN_POLICY)
    bus = harness.SystemBus(includedirs=[policy_dir])
    yield bus
    bus.stop()


@pytest.fixture(scope="module")
def polkit_bus(users):
    """A policy-enforcing bus where polkitd may own its name too."""
    bus = policy_bus()
    yield bus
    bus.stop()


@pytest.fixture(scope="module")
def polkitd(polkit_bus):
    """A real polkitd on polkit_bus, with the project's actions and no rules."""
    authority = Polkitd(polkit_bus).start()
    yield authority
    authority.close()


@pytest.fixture(scope="module", params=harness.LIBRARIES)
def library(request) -> str:
    """The bus library randomd runs on; every daemon test runs on both."""
    return request.param


@pytest.fixture
def start_randomd(library):
    """Start randomd with a config text on a bus of its own (daemon.bus).

    Later calls start more daemons on the same bus; all stop after the test.
    """
    buses: list[harness.SystemBus] = []
    started: list[harness.Randomd] = []

    def start(config: str = "", **kwargs) -> harness.Randomd:
        if not buses:
            buses.append(harness.SystemBus())
        daemon = harness.Randomd(buses[0], library, config, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
    for bus in buses:
        bus.stop()


@pytest.fixture(scope="module")
def randomd(system_bus, library):
    """One randomd for the tests of a module that leave its state alone."""
    daemon = harness.Randomd(system_bus, library).wait_ready()
    yield daemon
    daemon.stop()


@pytest.fixture
def scenarios():
    """scenarios(address, library, func, *args) starts a Scenario (scenarios.py).

    As randomd-test unless given user=; any still running at the end of the
    test is killed.
    """
    started: list[Scenario] = []

    def start(address: str, library: str, func, *args, **kwargs) -> Scenario:
        scenario = Scenario(address, library, func, *args, **kwargs)
        started.append(scenario)
        return scenario

    yield start
    for scenario in started:
        scenario.kill()


@pytest.fixture(scope="module")
def client_randomd(polkit_bus, library):
    """randomd for the client library's tests, on polkit_bus (scenarios.CLIENT_CONFIG)."""
    daemon = harness.Randomd(polkit_bus, library, CLIENT_CONFIG).wait_ready()
    yield daemon
    daemon.stop()


@pytest.fixture
def start_scenario(polkit_bus, library, client_randomd, scenarios):
    """start_scenario(func, *args, user=randomd-test): a Scenario against client_randomd."""
    def start(func, *args, user: str | None = harness.TEST_USER) -> Scenario:
        return scenarios(polkit_bus.address, library, func, *args, user=user)
    return start


@pytest.fixture
def run_scenario(start_scenario):
    """run_scenario(func, *args, user=randomd-test): a scenario's outcome, run to its end."""
    def run(func, *args, user: str | None = harness.TEST_USER) -> dict:
        return start_scenario(func, *args, user=user).outcome()
    return run


@pytest.fixture
async def client(system_bus):
    """A root client connection (dbus-fast when installed)."""
    connection = await dbus.connect(system_bus.address)
    yield connection
    connection.disconnect()
