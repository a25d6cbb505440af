"""The configuration file: every key, its bounds, and every way a file can be wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from randomd import config
from randomd.config import Config
from randomd.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[2] / "conf/randomd/randomd.conf"

# Each key: its Config attribute, a valid value other than the default, and
# its bounds (None for LogLevel, which has choices).
KEYS = {
    "MaxQuickBits": ("max_quick_bits", 128, (1, 65536)),
    "MaxBytes": ("max_bytes", 1024, (1, 1048576)),
    "MaxSlowBits": ("max_slow_bits", 64, (1, 4096)),
    "MaxJobs": ("max_jobs", 10, (1, 65536)),
    "MaxJobsPerUser": ("max_jobs_per_user", 2, (1, 65536)),
    "SlowBitInterval": ("slow_bit_interval", 0.5, (0, 60)),
    "ResultTTL": ("result_ttl", 5.0, (0, 86400)),
    "JobTimeout": ("job_timeout", 30.0, (0.001, 86400)),
    "IdleExitSec": ("idle_exit_sec", 20.0, (0, 86400)),
    "LogLevel": ("log_level", "debug", None),
}
INTEGERS = [name for name, (_, value, _) in KEYS.items() if isinstance(value, int)]
NUMBERS = [name for name, (_, value, _) in KEYS.items() if isinstance(value, float)]


def load_text(tmp_path: Path, text: str | bytes) -> Config:
    path = tmp_path / "randomd.conf"
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return config.load(path)


def refused(tmp_path: Path, text: str | bytes) -> str:
    """The message of the ConfigError for a file holding *text*, without the file's name."""
    with pytest.raises(ConfigError) as raised:
        load_text(tmp_path, text)
    message = str(raised.value)
    prefix = f"{tmp_path / 'randomd.conf'}: "
    assert message.startswith(prefix)
    return message[len(prefix):]


def toml(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def test_every_key_is_known() -> None:
    assert set(config.KEY_NAMES) == set(KEYS)


def test_a_missing_file_means_the_defaults(tmp_path: Path) -> None:
    assert config.load(tmp_path / "absent.conf") == Config()


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_text(tmp_path, "") == Config()


def test_the_shipped_file_documents_the_defaults(tmp_path: Path) -> None:
    uncommented = re.sub(r"^#([A-Z]\w* = )", r"\1", SHIPPED.read_text(), flags=re.M)
    assert set(re.findall(r"^([A-Z]\w*) = ", uncommented, flags=re.M)) == set(KEYS)
    assert load_text(tmp_path, uncommented) == Config()


@pytest.mark.parametrize("name", KEYS)
def test_each_key_sets_its_setting(tmp_path: Path, name: str) -> None:
    attribute, value, _ = KEYS[name]
    loaded = load_text(tmp_path, f"{name} = {toml(value)}\n")
    assert getattr(loaded, attribute) == value
    assert type(getattr(loaded, attribute)) is type(getattr(Config(), attribute))


@pytest.mark.parametrize("name", [name for name in KEYS if KEYS[name][2] is not None])
def test_each_bound_is_allowed(tmp_path: Path, name: str) -> None:
    attribute, _, (low, high) = KEYS[name]
    for bound in (low, high):
        assert getattr(load_text(tmp_path, f"{name} = {bound}\n"), attribute) == bound


@pytest.mark.parametrize("name", [name for name in KEYS if KEYS[name][2] is not None])
def test_a_value_out_of_range_is_refused_with_the_range(tmp_path: Path, name: str) -> None:
    _, _, (low, high) = KEYS[name]
    above = high + 1
    assert refused(tmp_path, f"{name} = {above}\n") == (
        f"{name} must be between {low:g} and {high:g}, not {above}")


@pytest.mark.parametrize("name", ["MaxJobs", "SlowBitInterval"])
def test_a_negative_value_is_refused(tmp_path: Path, name: str) -> None:
    assert "must be between" in refused(tmp_path, f"{name} = -1\n")


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_non_finite_number_is_refused(tmp_path: Path, value: str) -> None:
    assert refused(tmp_path, f"JobTimeout = {value}\n").startswith(
        "JobTimeout must be between 0.001 and 86400, not ")


@pytest.mark.parametrize("name", INTEGERS)
def test_an_integer_key_refuses_a_fraction(tmp_path: Path, name: str) -> None:
    assert refused(tmp_path, f"{name} = 2.5\n") == f"{name} must be an integer, not 2.5"


@pytest.mark.parametrize("name", NUMBERS)
def test_a_number_key_takes_an_integer(tmp_path: Path, name: str) -> None:
    attribute = KEYS[name][0]
    loaded = getattr(load_text(tmp_path, f"{name} = 1\n"), attribute)
    assert (loaded, type(loaded)) == (1.0, float)


@pytest.mark.parametrize("value, shown", [('"10"', "'10'"), ("true", "True"), ("[1]", "[1]")])
def test_a_value_of_the_wrong_type_is_refused(tmp_path: Path, value: str, shown: str) -> None:
    assert refused(tmp_path, f"MaxJobs = {value}\n") == f"MaxJobs must be an integer, not {shown}"
    assert refused(tmp_path, f"ResultTTL = {value}\n") == f"ResultTTL must be a number, not {shown}"


def test_an_unknown_log_level_is_refused_with_the_choices(tmp_path: Path) -> None:
    assert refused(tmp_path, 'LogLevel = "loud"\n') == (
        "LogLevel must be one of debug, info, notice, warning, error, not 'loud'")


def test_a_log_level_that_is_not_a_string_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path, "LogLevel = 3\n").startswith("LogLevel must be one of ")


def test_an_unknown_key_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    assert refused(tmp_path, "MaxJob = 3\n") == (
        f"unknown key 'MaxJob' (known keys: {', '.join(KEYS)})")


def test_a_key_in_a_section_is_unknown(tmp_path: Path) -> None:
    assert refused(tmp_path, "[randomd]\nMaxJobs = 3\n").startswith("unknown key 'randomd' ")


def test_keys_are_case_sensitive(tmp_path: Path) -> None:
    assert refused(tmp_path, "maxjobs = 3\n").startswith("unknown key 'maxjobs' ")


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path, "MaxJobs = \n").startswith("not valid TOML: ")


def test_a_repeated_key_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path, "MaxJobs = 3\nMaxJobs = 4\n").startswith("not valid TOML: ")


def test_a_file_that_is_not_utf8_is_refused_with_the_byte(tmp_path: Path) -> None:
    before = b'LogLevel = "info"\n# caf'
    assert refused(tmp_path, before + b"\xe9\n") == (
        f"not valid TOML: not UTF-8 at byte {len(before)}")


def test_a_file_nested_too_deeply_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path, "x = " + "[" * 100000 + "]" * 100000 + "\n") == (
        "not valid TOML: nested too deeply")


def test_a_path_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r": cannot be read: Is a directory$"):
        config.load(tmp_path)


def test_several_keys_set_several_settings(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "MaxJobs = 10\nMaxJobsPerUser = 2\nLogLevel = \"error\"\n")
    assert loaded == Config(max_jobs=10, max_jobs_per_user=2, log_level="error")
