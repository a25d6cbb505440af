"""The configuration file: TOML, one key per limit, read at start and on SIGHUP."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_PATH = Path("/etc/randomd/randomd.conf")
LOG_LEVELS = ("debug", "info", "notice", "warning", "error")


@dataclass(frozen=True)
class Config:
    """Every setting, with the defaults the shipped file documents."""

    max_quick_bits: int = 4096
    max_bytes: int = 65536
    max_slow_bits: int = 256
    max_jobs: int = 1024
    max_jobs_per_user: int = 64
    slow_bit_interval: float = 0.25
    result_ttl: float = 60.0
    job_timeout: float = 600.0
    idle_exit_sec: float = 0.0
    log_level: str = "info"


@dataclass(frozen=True)
class _Key:
    name: str  # as written in the file (and, for limits, the D-Bus property)
    attribute: str
    kind: type
    low: float
    high: float
    choices: tuple[str, ...] = field(default=())


# The upper bounds keep one reply well under the bus's message size limit
# and one job's secret under a few hundred bytes.
_KEYS = (
    _Key("MaxQuickBits", "max_quick_bits", int, 1, 65536),
    _Key("MaxBytes", "max_bytes", int, 1, 1048576),
    _Key("MaxSlowBits", "max_slow_bits", int, 1, 4096),
    _Key("MaxJobs", "max_jobs", int, 1, 65536),
    _Key("MaxJobsPerUser", "max_jobs_per_user", int, 1, 65536),
    _Key("SlowBitInterval", "slow_bit_interval", float, 0, 60),
    _Key("ResultTTL", "result_ttl", float, 0, 86400),
    _Key("JobTimeout", "job_timeout", float, 0.001, 86400),
    _Key("IdleExitSec", "idle_exit_sec", float, 0, 86400),
    _Key("LogLevel", "log_level", str, 0, 0, LOG_LEVELS),
)
KEY_NAMES = tuple(key.name for key in _KEYS)


def load(path: Path) -> Config:
    """Read and check *path*; a missing file means the defaults.

    Raises ConfigError naming the file, the key and the problem.
    """
    try:
        with path.open("rb") as file:
            table = tomllib.load(file)
    except FileNotFoundError:
        return Config()
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 at byte {error.start}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    try:
        return parse(table)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def parse(table: dict[str, Any]) -> Config:
    """Build a Config from a parsed TOML table, checking every key."""
    keys = {key.name: key for key in _KEYS}
    values = {}
    for name, value in table.items():
        key = keys.get(name)
        if key is None:
            raise ConfigError(f"unknown key {name!r} (known keys: {', '.join(KEY_NAMES)})")
        values[key.attribute] = _check(key, value)
    return dataclasses.replace(Config(), **values)


def _check(key: _Key, value: Any) -> Any:
    if key.kind is str:
        if value not in key.choices:
            raise ConfigError(f"{key.name} must be one of {', '.join(key.choices)}, not {value!r}")
        return value
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not numeric or (key.kind is int and not isinstance(value, int)):
        raise ConfigError(f"{key.name} must be {'an integer' if key.kind is int else 'a number'}, "
                          f"not {value!r}")
    if not (math.isfinite(value) and key.low <= value <= key.high):
        raise ConfigError(f"{key.name} must be between {key.low:g} and {key.high:g}, not {value}")
    return key.kind(value)
