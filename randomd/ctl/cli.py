"""randomctl's command line: the argparse parser, its help, and argument types.

Global options are accepted before and after the command
(``randomctl --json jobs`` and ``randomctl jobs --json``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__, api
from . import exits
from .output import JSON_MODES

PROG = "randomctl"
UINT32_MAX = 2**32 - 1
DEFAULT_TIMEOUT = 25.0  # seconds, as libdbus and sd-bus

_DESCRIPTION = "Ask randomd, the random number service on D-Bus, for random numbers."

_MAIN_EPILOG = f"""\
JOB is a job id (7) or a job path ({api.job_path(7)}).
'randomctl COMMAND --help' shows a command's options and examples.

examples:
  randomctl quick 32
  randomctl bytes 16 --base64
  randomctl slow 64
  randomctl --json status

{exits.HELP}
"""

# (name, help, epilog with examples)
_COMMANDS: dict[str, tuple[str, str]] = {
    "quick": ("print a random number of BITS bits, at once",
              "examples:\n  randomctl quick          # 16 bits: 0 to 65535\n"
              "  randomctl quick 128\n  randomctl --json quick 8"),
    "bytes": ("print COUNT random bytes",
              "examples:\n  randomctl bytes 16\n  randomctl bytes 32 --base64\n"
              "  randomctl bytes 1024 --raw > key.bin"),
    "slow": ("build a random number one bit at a time, and print it",
             "On a terminal a progress bar is drawn on standard error; Ctrl-C cancels\n"
             "the job on randomd and exits with status 130. Only the number goes to\n"
             "standard output.\n\n"
             "A job belongs to your uid, not to randomctl: with --no-wait randomctl\n"
             "prints the job's id and exits, the job runs on, and any later randomctl\n"
             "of yours (or root) collects its number with 'randomctl wait ID'.\n\n"
             "examples:\n  randomctl slow 8\n  n=$(randomctl slow 64)\n"
             "  id=$(randomctl slow --no-wait 64); ...; randomctl wait \"$id\"\n"
             "  randomctl --json slow 16"),
    "jobs": ("list the slow jobs randomd knows (running, and finished ones kept for a while)",
             "examples:\n  randomctl jobs\n  randomctl --json jobs"),
    "show": ("print the properties of a job, as Name=value lines",
             "examples:\n  randomctl show 7\n"
             f"  randomctl show {api.job_path(7)}\n  randomctl --json show 7"),
    "wait": ("wait for a job to finish and print its number",
             "Any process of the job's owner uid (such as the randomctl after\n"
             "'randomctl slow --no-wait'), root, or someone authorized for\n"
             f"{api.ACTION_MANAGE_JOBS} may wait for a job. Ctrl-C stops waiting\n"
             "and leaves the job running.\n\n"
             "examples:\n  randomctl wait 7\n  randomctl --timeout 60 wait 7"),
    "cancel": ("cancel one or more jobs",
               "Cancelling a finished job does nothing. Cancelling another user's job needs\n"
               f"{api.ACTION_MANAGE_JOBS}.\n\n"
               "examples:\n  randomctl cancel 7\n  randomctl cancel 7 8 9"),
    "cancel-all": ("cancel every unfinished job",
                   f"Needs authorization for {api.ACTION_MANAGE_JOBS}.\n\n"
                   "examples:\n  randomctl cancel-all\n  sudo randomctl cancel-all"),
    "status": ("show randomd's version, limits, bit interval and running jobs "
               "(the default command)",
               "examples:\n  randomctl status\n  randomctl              # the same\n"
               "  randomctl --json=pretty status"),
    "monitor": ("print job events (created, progress, finished, removed) until Ctrl-C",
                "Events never carry a job's number. With --json each event is one JSON\n"
                "object on its own line. Ctrl-C ends the monitor with status 0.\n\n"
                "examples:\n  randomctl monitor\n  randomctl --json monitor | jq .event"),
    "set-interval": ("set the pause per bit (SlowBitInterval) of slow jobs started from now on",
                     f"Needs authorization for {api.ACTION_CONFIGURE}. The value holds until\n"
                     "randomd reloads its configuration (SIGHUP) or restarts.\n\n"
                     "examples:\n  randomctl set-interval 0.1\n  sudo randomctl set-interval 1"),
    "reload": ("make randomd re-read its configuration file",
               f"Needs authorization for {api.ACTION_CONFIGURE}. randomd answers once the\n"
               "new configuration is in effect; a broken file is refused, naming the\n"
               "problem, and the old configuration stays. 'systemctl reload randomd'\n"
               "does the same.\n\n"
               "examples:\n  randomctl reload\n  sudo randomctl reload"),
}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports misuse as a CtlError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise exits.CtlError(exits.USAGE, f"{message} (see '{self.prog} --help')")


def uint32(text: str) -> int:
    """A D-Bus 'u': a whole number from 0 to 2**32-1."""
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if not 0 <= value <= UINT32_MAX:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 0 to {UINT32_MAX}, not {text!r}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds (randomd judges its range)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A number of seconds above zero."""
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text!r}")
    return value


def job(text: str) -> str:
    """A job id (7) or job path, as the job's object path."""
    prefix = api.JOBS_PATH + "/"
    number = text[len(prefix):] if text.startswith(prefix) else text
    if not (number.isascii() and number.isdigit() and int(number) > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a job: give an id such as 7 or a path such as {api.job_path(7)}")
    return api.job_path(int(number))


def _add_global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes; in subcommands they must not reset the main ones."""
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--system", dest="bus", action="store_const", const="system",
                       default=default("system"), help="talk to randomd on the system bus "
                       "(the default)")
    where.add_argument("--session", dest="bus", action="store_const", const="session",
                       default=default("system"), help="talk to randomd on the session bus")
    where.add_argument("--address", metavar="ADDR", default=default(None),
                       help="talk to randomd on the bus at this D-Bus address")
    group.add_argument("--json", metavar="MODE", choices=JSON_MODES, default=default("off"),
                       help="print JSON on standard output (errors too): 'short' (one line, "
                       "also a bare --json), 'pretty' (indented) or 'off'; no progress bar, "
                       "no password prompts")
    group.add_argument("--no-legend", dest="legend", action="store_false",
                       default=default(True), help="leave out the headers and footers of tables")
    group.add_argument("-q", "--quiet", action="store_true", default=default(False),
                       help="print only the result: no progress bar, no notes")
    group.add_argument("--no-pager", action="store_true", default=default(False),
                       help="accepted as by systemd's tools; randomctl never pages")
    group.add_argument("--no-ask-password", dest="ask_password", action="store_false",
                       default=default(True), help="never let polkit ask for a password "
                       "(by default it may when standard input is a terminal)")
    group.add_argument("--timeout", metavar="SECONDS", type=positive_seconds,
                       default=default(None), help="give up on any call to randomd after "
                       f"SECONDS (default {DEFAULT_TIMEOUT:g}); also limits how long "
                       "slow and wait wait for their job (by default they wait as long "
                       "as the job runs)")


def build_parser() -> Parser:
    """The whole command line."""
    parser = Parser(prog=PROG, description=_DESCRIPTION, epilog=_MAIN_EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_global_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parser.set_defaults(command="status")
    sub: dict[str, argparse.ArgumentParser] = {}
    for name, (summary, epilog) in _COMMANDS.items():
        sub[name] = commands.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ".",
            epilog=f"{epilog}\n\n{exits.HELP}",
            formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_global_options(sub[name], defaults=False)

    sub["quick"].add_argument("bits", metavar="BITS", type=uint32, nargs="?", default=16,
                              help="how many bits, from 1 to randomd's MaxQuickBits "
                              "(default 16)")
    sub["bytes"].add_argument("count", metavar="COUNT", type=uint32,
                              help="how many bytes, from 1 to randomd's MaxBytes")
    encoding = sub["bytes"].add_mutually_exclusive_group()
    for flag, what in (("hex", "lower-case hexadecimal (the default)"),
                       ("base64", "base64"),
                       ("raw", "the bytes themselves (not with --json)")):
        encoding.add_argument(f"--{flag}", dest="encoding", action="store_const", const=flag,
                              help=f"print {what}")
    sub["bytes"].set_defaults(encoding="hex")
    sub["slow"].add_argument("bits", metavar="BITS", type=uint32, nargs="?", default=16,
                             help="how many bits, from 1 to randomd's MaxSlowBits (default 16)")
    sub["slow"].add_argument("--no-wait", action="store_true",
                             help="print the job's id and return at once; the job runs on "
                             "(collect it with 'randomctl wait ID')")
    for name in ("show", "wait"):
        sub[name].add_argument("job", metavar="JOB", type=job, help="a job id or path")
    sub["cancel"].add_argument("jobs", metavar="JOB", type=job, nargs="+",
                               help="job ids or paths")
    sub["set-interval"].add_argument("seconds", metavar="SECONDS", type=seconds,
                                     help="seconds per bit, from 0 to 60")
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse *argv*; raises CtlError(USAGE) on misuse.  No command is 'status'."""
    args = build_parser().parse_args(normalize_json(argv))
    if args.command == "bytes" and args.json != "off" and args.encoding == "raw":
        raise exits.CtlError(exits.USAGE, "--raw cannot be used with --json "
                             "(see 'randomctl bytes --help')")
    return args


def normalize_json(argv: Sequence[str]) -> list[str]:
    """A bare --json as --json=short, as systemd's tools take it.

    argparse cannot take an optional value here: in `--json jobs` the
    command would be taken for the mode.
    """
    return ["--json=short" if token == "--json" else token for token in argv]


def json_mode(argv: Sequence[str]) -> str:
    """The JSON mode asked for in *argv*, for reporting a command line argparse refused."""
    mode = "off"
    for token in normalize_json(argv):
        if token.startswith("--json="):
            mode = token.removeprefix("--json=")
    return mode if mode in JSON_MODES else "off"
