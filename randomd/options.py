"""randomd's command line: a handful of options, read without argparse.

argparse would be a few per cent of randomd's start-up (its import and
building the parser), which bus activation pays on every first call; the
options are few and fixed, so they are read here, with argparse's
conventions: ``--name value`` or ``--name=value``, the last one wins, exit
status 2 and the usage line for a mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import DEFAULT_PATH, LOG_LEVELS

USAGE = ("usage: randomd [-h] [--system | --session | --address ADDR] [--config PATH]\n"
         "               [--log-level LEVEL] [--version]\n")
HELP = f"""{USAGE}
Serve random numbers on the D-Bus system bus.

options:
  -h, --help         show this help message and exit
  --system           serve on the system bus (the default)
  --session          serve on the session bus (for development)
  --address ADDR     serve on the bus at this address
  --config PATH      configuration file (default {DEFAULT_PATH})
  --log-level LEVEL  overrides LogLevel from the configuration file
                     ({", ".join(LOG_LEVELS)})
  --version          show program's version number and exit
"""
EX_USAGE = 2  # argparse's status for a mistake on the command line

_WHERE = ("--system", "--session", "--address")
_VALUED = ("--address", "--config", "--log-level")


class Options:
    """What the command line asks for."""

    __slots__ = ("bus", "address", "config", "log_level")

    def __init__(self) -> None:
        self.bus: str | None = None  # "system", "session", or None: the system bus
        self.address: str | None = None
        self.config: Path = DEFAULT_PATH
        self.log_level: str | None = None  # None: the file's LogLevel

    def __repr__(self) -> str:
        return (f"Options(bus={self.bus!r}, address={self.address!r}, config={self.config!r}, "
                f"log_level={self.log_level!r})")


class Exit(Exception):
    """Not a run: *text* to print (stdout for status 0, else stderr), then exit *status*."""

    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.text = text
        self.status = status


def parse(argv: Sequence[str]) -> Options:
    """The options in *argv* (without the program name); raises Exit for
    --help, --version and every mistake."""
    options = Options()
    where: str | None = None
    tokens = iter(argv)
    for token in tokens:
        name, equals, value = token.partition("=")
        if name in ("-h", "--help") and not equals:
            raise Exit(HELP, 0)
        if name == "--version" and not equals:
            raise Exit(f"randomd {__version__}\n", 0)
        if name in _VALUED:
            if not equals:
                value = next(tokens, "")
                if not value or value.startswith("-"):
                    raise _mistake(f"argument {name}: expected one argument")
        elif name not in _WHERE or equals:
            raise _mistake(f"unrecognized arguments: {token}")
        if name in _WHERE:
            if where is not None and where != name:
                raise _mistake(f"argument {name}: not allowed with argument {where}")
            where = name
        _set(options, name, value)
    return options


def _set(options: Options, name: str, value: str) -> None:
    if name == "--system":
        options.bus = "system"
    elif name == "--session":
        options.bus = "session"
    elif name == "--address":
        options.address = value
    elif name == "--config":
        options.config = Path(value)
    elif value in LOG_LEVELS:
        options.log_level = value
    else:
        choices = ", ".join(repr(level) for level in LOG_LEVELS)
        raise _mistake(f"argument --log-level: invalid choice: {value!r} (choose from {choices})")


def _mistake(message: str) -> Exit:
    return Exit(f"{USAGE}randomd: error: {message}\n", EX_USAGE)
