"""Settings: the configuration in effect, its reload, and what listeners hear of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from randomd.config import Config
from randomd.errors import ConfigError
from randomd.settings import Settings, SettingsListener


class Listener(SettingsListener):
    """Notes what it hears, in order."""

    def __init__(self, settings: Settings) -> None:
        self.heard: list[tuple] = []
        settings.subscribe(self)

    def reloading(self) -> None:
        self.heard.append(("reloading",))

    def config_changed(self, old: Config, new: Config) -> None:
        self.heard.append(("changed", old.max_jobs, new.max_jobs))

    def reloaded(self) -> None:
        self.heard.append(("reloaded",))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "randomd.conf"
    path.write_text("MaxJobs = 5\n")
    return Settings.load(path)


def test_load_reads_the_file(settings: Settings) -> None:
    assert settings.current.max_jobs == 5


def test_a_reload_puts_the_new_file_in_effect(settings: Settings) -> None:
    settings.path.write_text("MaxJobs = 7\n")
    settings.reload()
    assert settings.current.max_jobs == 7


def test_a_reload_is_told_to_listeners_in_order(settings: Settings) -> None:
    listener = Listener(settings)
    settings.path.write_text("MaxJobs = 7\n")
    settings.reload()
    assert listener.heard == [("reloading",), ("changed", 5, 7), ("reloaded",)]


def test_a_broken_file_keeps_the_old_configuration(settings: Settings) -> None:
    listener = Listener(settings)
    settings.path.write_text("MaxJobs = 0\n")
    with pytest.raises(ConfigError, match="MaxJobs must be between 1 and 65536, not 0"):
        settings.reload()
    assert settings.current.max_jobs == 5
    assert listener.heard == [("reloading",), ("reloaded",)]


def test_the_command_lines_log_level_wins_over_the_files(tmp_path: Path) -> None:
    path = tmp_path / "randomd.conf"
    path.write_text('LogLevel = "error"\n')
    assert Settings.load(path).log_level == "error"
    assert Settings.load(path, log_level="debug").log_level == "debug"
