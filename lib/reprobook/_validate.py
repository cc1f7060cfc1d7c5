"""Argument checks that fail loudly, naming the argument and what was expected.

Every public function in reprobook validates its inputs with these helpers, so a reader who
passes a wrong name or shape gets one clear sentence instead of a silent wrong result.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def check_choice(argument: str, value: T, choices: Iterable[T]) -> T:
    """Return ``value`` if it is one of ``choices``; otherwise raise ``ValueError`` listing them."""
    valid = list(choices)
    if value not in valid:
        listed = ", ".join(repr(c) for c in valid)
        raise ValueError(f"{argument}={value!r} is not valid; expected one of: {listed}")
    return value


def check_nonempty_text(argument: str, value: str) -> str:
    """Return ``value`` if it is a string with at least one non-space character."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{argument} must be a non-empty string, got {value!r}")
    return value


def check_range(argument: str, value: float, low: float, high: float) -> float:
    """Return ``value`` if ``low <= value <= high``; otherwise raise ``ValueError``."""
    if not low <= value <= high:
        raise ValueError(f"{argument}={value!r} is out of range; expected {low} <= {argument} <= {high}")
    return value
