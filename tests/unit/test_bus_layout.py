"""The start-up check that the bus library is laid out as randomd.dbus expects.

The modules checked here are stand-ins, written to a file as a library's
asyncio module would be: a small MessageBus and _MessageWriter with only
what randomd/dbus/layout.py looks at.  Each test changes one thing in the
stand-in, as a future release might.  The last tests run randomd and randomctl on the
installed library with one part of it removed, standing in for a release
that changed it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from randomd import dbus
from randomd.dbus.layout import layout_problem

STAND_IN = '''
class _MessageWriter:
    def __init__(self, bus):
        self.bus = bus

    def buffer_message(self, msg, future=None):
        pass

    def schedule_write(self, msg=None, future=None):
        pass


class MessageBus:
    def __init__(self):
        self._writer = _MessageWriter(self)

    async def connect(self):
        self._loop.add_reader(self._fd, self._read)
        self._writer.schedule_write()

    def send(self, msg):
        self._writer.schedule_write(msg, None)

    def _finalize(self, err=None): pass
    def next_serial(self): pass
    def call(self, msg): pass
    def disconnect(self): pass
    def add_message_handler(self, handler): pass
    def request_name(self, name, flags=0): pass
    def release_name(self, name): pass
    def wait_for_disconnect(self): pass
'''

REPO = Path(__file__).resolve().parents[2]


def stand_in(tmp_path: Path, source: str = STAND_IN, suffix: str = ".py"):
    """The stand-in library module written from *source*, imported."""
    path = tmp_path / f"stand_in_message_bus{suffix}"
    path.write_text(source)
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def test_the_installed_library_is_accepted() -> None:
    dbus.check_library()


def test_the_stand_in_as_written_is_accepted(tmp_path: Path) -> None:
    assert layout_problem(stand_in(tmp_path)) is None


def test_a_library_without_the_writer_randomd_replaces_is_refused(tmp_path: Path) -> None:
    source = STAND_IN.replace("class _MessageWriter:", "class MessageWriter:").replace(
        "_MessageWriter(self)", "MessageWriter(self)")
    assert layout_problem(stand_in(tmp_path, source)) == (
        "it has no _MessageWriter for randomd to replace")


def test_a_writer_without_schedule_write_is_refused(tmp_path: Path) -> None:
    source = STAND_IN.replace("def schedule_write(", "def write(")
    assert layout_problem(stand_in(tmp_path, source)) == (
        "its _MessageWriter has no schedule_write()")


def test_a_bus_without_finalize_is_refused(tmp_path: Path) -> None:
    source = STAND_IN.replace("def _finalize(", "def _close(")
    assert layout_problem(stand_in(tmp_path, source)) == "its MessageBus has no _finalize()"


def test_a_bus_that_makes_its_writer_otherwise_is_refused(tmp_path: Path) -> None:
    source = STAND_IN.replace("self._writer = _MessageWriter(self)",
                              "self._message_writer = _MessageWriter(self)")
    assert "no longer makes its writer" in layout_problem(stand_in(tmp_path, source))


def test_a_bus_that_calls_a_writer_method_randomd_lacks_is_refused(tmp_path: Path) -> None:
    source = STAND_IN.replace("self._writer.schedule_write(msg, None)", "self._writer.flush(msg)")
    assert layout_problem(stand_in(tmp_path, source)) == (
        "its MessageBus calls _writer.flush(), which randomd's writer lacks")


def test_a_bus_that_adds_no_reader_to_its_loop_is_refused(tmp_path: Path) -> None:
    source = STAND_IN.replace("self._loop.add_reader(", "self.start_reading(")
    assert layout_problem(stand_in(tmp_path, source)) == (
        "its MessageBus no longer adds its reader to its event loop")


def test_a_compiled_module_is_refused_for_want_of_source(tmp_path: Path) -> None:
    module = stand_in(tmp_path, suffix=".so")
    assert layout_problem(module) == "its stand_in_message_bus has no Python source to check"


def test_dbus_fast_without_the_flag_table_to_mend_is_refused(tmp_path: Path) -> None:
    assert layout_problem(stand_in(tmp_path), flag_map=None, needs_flag_map=True) == (
        "it has no constants.MESSAGE_FLAG_MAP to mend")


# Run in a fresh interpreter: the library's module loses one part (its
# _MessageWriter) before randomd imports it, standing in for a release
# laid out otherwise.
def _run_on_changed_library(library: str, entry: str) -> subprocess.CompletedProcess:
    prologue = (f"import {library}.aio.message_bus as library\n"
                "del library._MessageWriter\n"
                "import sys\n")
    env = {**os.environ, "RANDOMD_BUS_LIBRARY": library, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", prologue + entry], env=env, cwd="/",
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("library", ["dbus_fast", "dbus_next"])
def test_randomd_refuses_an_unknown_library_layout_in_one_line(library: str,
                                                                 tmp_path: Path) -> None:
    config = tmp_path / "randomd.conf"
    config.write_text("")
    result = _run_on_changed_library(
        library, "import randomd.daemon\n"
        f"sys.exit(randomd.daemon.main(['--address', 'unix:path={tmp_path}/none', "
        f"'--config', '{config}']))")
    name = library.replace("_", "-")
    assert (result.returncode, result.stdout) == (78, ""), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"randomd: {name} {_version(library)} is not supported: "
                                    "it has no _MessageWriter"), result.stderr


@pytest.mark.parametrize("library", ["dbus_fast", "dbus_next"])
def test_randomctl_refuses_an_unknown_library_layout_in_one_line(library: str,
                                                                   tmp_path: Path) -> None:
    result = _run_on_changed_library(
        library, "import randomd.ctl\n"
        f"sys.exit(randomd.ctl.main(['--address', 'unix:path={tmp_path}/none', 'status']))")
    name = library.replace("_", "-")
    assert (result.returncode, result.stdout) == (69, ""), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"randomctl: {name} {_version(library)} is not supported: "
                                    "it has no _MessageWriter"), result.stderr


def _version(library: str) -> str:
    """The installed version of *library*, asked of its package metadata."""
    from importlib.metadata import version
    return version(library.replace("_", "-"))
