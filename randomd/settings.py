"""The configuration in effect: its one owner, which loads, reloads and tells listeners.

Every other part of randomd reads ``settings.current`` when it needs a limit,
so a reload is in effect everywhere at once.  Reload() on the bus and SIGHUP
both call Settings.reload().
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import logs
from .config import Config, load
from .errors import ConfigError

log = logging.getLogger("randomd")


class SettingsListener:
    """What a part of randomd hears about the configuration; it overrides what it needs."""

    def reloading(self) -> None:
        """A reload starts."""

    def config_changed(self, old: Config, new: Config) -> None:
        """*new* is in effect instead of *old*."""

    def reloaded(self) -> None:
        """A reload is over, whether it succeeded or not."""


class Settings:
    """The configuration file's current contents, and the log level in effect."""

    def __init__(self, path: Path, config: Config, *, log_level: str | None = None) -> None:
        self.path = path
        self._current = config
        self._log_level = log_level  # from the command line: it wins over the file's
        self._listeners: list[SettingsListener] = []

    @classmethod
    def load(cls, path: Path, *, log_level: str | None = None) -> Settings:
        """Read *path* (a missing file means the defaults); raises ConfigError."""
        return cls(path, load(path), log_level=log_level)

    @property
    def current(self) -> Config:
        """The configuration in effect."""
        return self._current

    @property
    def log_level(self) -> str:
        """The command line's --log-level, else the file's LogLevel."""
        return self._log_level or self._current.log_level

    def subscribe(self, listener: SettingsListener) -> None:
        """Tell *listener* of every reload and change (called from constructors)."""
        self._listeners.append(listener)

    def reload(self) -> None:
        """Re-read the file; a broken one raises ConfigError and changes nothing."""
        for listener in self._listeners:
            listener.reloading()
        try:
            config = load(self.path)
        except ConfigError as error:
            log.error("reload failed, keeping the old configuration: %s", error)
            raise
        else:
            self.apply(config)
            log.info("configuration reloaded from %s", self.path)
        finally:
            for listener in self._listeners:
                listener.reloaded()

    def apply(self, config: Config) -> None:
        """Put *config* in effect and tell the listeners."""
        old, before = self._current, self.log_level
        self._current = config
        if self.log_level != before:
            logs.set_level(self.log_level)
        for listener in self._listeners:
            listener.config_changed(old, config)
