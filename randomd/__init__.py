"""randomd: a D-Bus system service that serves random numbers."""

__version__ = "0.2.0"
