"""randomd's command line, as the daemon reads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from randomd import __version__, options
from randomd.config import DEFAULT_PATH

CHECKOUT = Path(__file__).resolve().parents[2]


def mistake(argv: list[str]) -> str:
    """The error line randomd prints for *argv*, after checking the status and the usage."""
    with pytest.raises(options.Exit) as raised:
        options.parse(argv)
    assert raised.value.status == 2
    usage, error = raised.value.text.split("randomd: error: ")
    assert usage == options.USAGE
    return error.rstrip("\n")


def test_no_options_mean_the_system_bus_and_the_default_file() -> None:
    parsed = options.parse([])
    assert (parsed.bus, parsed.address, parsed.config, parsed.log_level) == (
        None, None, DEFAULT_PATH, None)


def test_the_usual_options_are_read() -> None:
    parsed = options.parse(["--address", "unix:path=/run/bus", "--config", "/etc/r.conf",
                            "--log-level", "debug"])
    assert (parsed.address, parsed.config, parsed.log_level) == (
        "unix:path=/run/bus", Path("/etc/r.conf"), "debug")


def test_a_value_may_follow_an_equals_sign() -> None:
    parsed = options.parse(["--address=unix:path=/run/bus", "--log-level=error"])
    assert (parsed.address, parsed.log_level) == ("unix:path=/run/bus", "error")


@pytest.mark.parametrize("flag, bus", [("--system", "system"), ("--session", "session")])
def test_the_bus_is_chosen_by_its_flag(flag: str, bus: str) -> None:
    assert options.parse([flag]).bus == bus


def test_the_last_of_a_repeated_option_wins() -> None:
    assert options.parse(["--config", "/a", "--config", "/b"]).config == Path("/b")


def test_two_buses_are_refused() -> None:
    assert mistake(["--system", "--address", "unix:path=/x"]) == (
        "argument --address: not allowed with argument --system")


def test_an_unknown_option_is_refused() -> None:
    assert mistake(["--bogus"]) == "unrecognized arguments: --bogus"


def test_a_positional_argument_is_refused() -> None:
    assert mistake(["extra"]) == "unrecognized arguments: extra"


def test_a_flag_with_a_value_is_refused() -> None:
    assert mistake(["--system=yes"]) == "unrecognized arguments: --system=yes"


@pytest.mark.parametrize("argv", [["--config"], ["--config", "--system"]])
def test_a_missing_value_is_refused(argv: list[str]) -> None:
    assert mistake(argv) == "argument --config: expected one argument"


def test_an_unknown_log_level_is_refused_with_the_choices() -> None:
    assert mistake(["--log-level", "loud"]) == (
        "argument --log-level: invalid choice: 'loud' (choose from 'debug', 'info', "
        "'notice', 'warning', 'error')")


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_lists_every_option(flag: str) -> None:
    with pytest.raises(options.Exit) as raised:
        options.parse(["--system", flag])
    assert raised.value.status == 0
    for option in ("--system", "--session", "--address", "--config", "--log-level",
                   "--version"):
        assert option in raised.value.text


def test_version_names_the_release() -> None:
    with pytest.raises(options.Exit) as raised:
        options.parse(["--version"])
    assert (raised.value.text, raised.value.status) == (f"randomd {__version__}\n", 0)


def test_the_daemon_prints_a_mistake_on_stderr_and_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "randomd", "--bogus"],
                            capture_output=True, text=True, timeout=30, cwd=CHECKOUT)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.endswith("randomd: error: unrecognized arguments: --bogus\n")


def test_the_daemon_prints_its_version_on_stdout() -> None:
    result = subprocess.run([sys.executable, "-m", "randomd", "--version"],
                            capture_output=True, text=True, timeout=30, cwd=CHECKOUT)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, f"randomd {__version__}\n", "")


def test_start_up_does_not_import_argparse() -> None:
    code = ("import sys, randomd.daemon\n"
            "randomd.daemon.options.parse(['--session', '--config', '/x'])\n"
            "print('argparse' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, cwd=CHECKOUT, check=True)
    assert result.stdout == "False\n"
