"""What every command gets: the parsed arguments, the connection, the output."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from .client import Client
from .output import Output


@dataclass
class Context:
    args: argparse.Namespace
    client: Client
    out: Output
    interrupted: bool = False  # set by the SIGINT handler before it cancels the command

    @property
    def show_progress(self) -> bool:
        """A progress bar is drawn on a terminal's stderr, never with --json or --quiet."""
        return not self.out.as_json and not self.out.quiet and sys.stderr.isatty()
