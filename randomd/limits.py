"""Checks of caller-supplied arguments against the configured limits."""

from .errors import InvalidArgument


def check_range(name: str, value: int, low: int, high: int, limit: str) -> None:
    """Refuse *value* outside [low, high], naming the argument and the limit."""
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be between {low} and {high} ({limit}), not {value}.")
