"""Argument checks that fail loudly, naming the argument and what was expected.

Every public function in reprobook validates its inputs with these helpers, so a reader who
passes a wrong name, number or shape gets one clear sentence instead of a silent wrong result.
This is the lowest layer of the library: it imports nothing from reprobook.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import TypeVar

import torch

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
    """Return ``value`` if ``low <= value <= high`` (NaN never is); otherwise raise ``ValueError``."""
    if not low <= value <= high:
        raise ValueError(f"{argument}={value!r} is out of range; expected {low} <= {argument} <= {high}")
    return value


def check_int(argument: str, value: int, low: int = 0, high: int | None = None) -> int:
    """Return ``value`` if it is an integer (not a bool) in ``[low, high]``; otherwise raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{argument} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        expected = f"{low} <= {argument}" + (f" <= {high}" if high is not None else "")
        raise ValueError(f"{argument}={value!r} is out of range; expected {expected}")
    return value


def check_float(
    argument: str,
    value: float,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """Return ``value`` if it is a finite number in ``[low, high]`` (an open end with ``open_low``/``open_high``).

    NaN and infinities are refused with the argument's name: they would otherwise train on silently.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{argument} must be a finite number, got {value!r}")
    below = value <= low if open_low else value < low
    above = value >= high if open_high else value > high
    if below or above:
        lower = f"{low} {'<' if open_low else '<='} " if low > -math.inf else ""
        upper = f" {'<' if open_high else '<='} {high}" if high < math.inf else ""
        raise ValueError(f"{argument}={value!r} is out of range; expected {lower}{argument}{upper}")
    return value


def check_fractions(argument: str, value: tuple[float, ...]) -> tuple[float, ...]:
    """Return ``value`` if it is a tuple of numbers strictly in ``(0, 1)`` (fractions of a run); else ``ValueError``."""
    if not isinstance(value, tuple) or not all(
        isinstance(m, (int, float)) and not isinstance(m, bool) and 0 < m < 1 for m in value
    ):
        raise ValueError(f"{argument} must be a tuple of fractions of num_steps in (0, 1), got {value!r}")
    return value


def check_bool(argument: str, value: bool) -> bool:
    """Return ``value`` if it is a bool (not 0/1 or a string); otherwise raise ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"{argument} must be True or False, got {value!r}")
    return value


def describe(value: object) -> str:
    """``dtype (shape)`` of a tensor, else the type's name: for error messages."""
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {tuple(value.shape)}"
    return type(value).__name__


def check_image_batch(argument: str, x: torch.Tensor, *, channels: int | None = None, multiple: int = 1) -> None:
    """Raise ``ValueError`` unless ``x`` is a floating-point ``(B, C, H, W)`` batch.

    ``channels``: the required ``C``; ``multiple``: ``H`` and ``W`` must be divisible by it (a rescaling factor).
    Integer images (0..255) are refused: every image function here works on floats in ``[0, 1]``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"{argument} must be a (B, C, H, W) tensor, got {describe(x)}")
    if not x.is_floating_point():
        raise ValueError(
            f"{argument} must hold floats in [0, 1], got dtype {x.dtype}; convert 8-bit images with x.float() / 255"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{argument} must have {channels} channels (B, {channels}, H, W), got {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if multiple > 1 and (height % multiple or width % multiple):
        raise ValueError(
            f"{argument} has H, W = {height}, {width}, not divisible by {multiple}; "
            f"crop it first, e.g. reprobook.data.images.crop_to_multiple(image, {multiple})"
        )


def check_triples(triples: torch.Tensor, num_entities: int, num_relations: int, argument: str = "triples") -> None:
    """``ValueError`` unless ``triples`` is a long ``(B, 3)`` tensor of known (head, relation, tail) ids."""
    if (
        not isinstance(triples, torch.Tensor)
        or triples.dtype != torch.long
        or triples.ndim != 2
        or triples.shape[1] != 3
    ):
        raise ValueError(
            f"{argument} must be a long tensor of (head, relation, tail) ids, shape (B, 3); got {describe(triples)}"
        )
    if not triples.numel():
        return
    for ids, count, kind in ((triples[:, [0, 2]], num_entities, "entity"), (triples[:, 1], num_relations, "relation")):
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= count:
            bad = low if low < 0 else high
            raise ValueError(f"{argument} holds unknown {kind} id {bad}; the model knows {kind} ids 0..{count - 1}")


def memory_bytes() -> int:
    """This machine's physical memory in bytes (``REPROBOOK_MAX_BYTES`` overrides it, e.g. in tests)."""
    override = os.environ.get("REPROBOOK_MAX_BYTES", "").strip()
    if override:
        return int(override)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits_in_memory(argument: str, value: object, nbytes: float) -> None:
    """Refuse, before allocating, a request that would need more than half of the machine's memory.

    ``nbytes``: what the call would allocate for ``argument=value``; the message says how much that is.
    """
    available = memory_bytes()
    if nbytes > available / 2:
        raise ValueError(
            f"{argument}={value!r} would need {nbytes / 1e9:,.1f} GB, more than half of this machine's "
            f"{available / 1e9:,.1f} GB; ask for less"
        )
