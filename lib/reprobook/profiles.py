"""Run profiles: one environment variable decides how big every experiment is.

``REPROBOOK_PROFILE`` is one of

* ``smoke`` -- CI: each chapter runs in about a minute on 2 CPU cores. Proves the pipeline runs;
  its numbers mean nothing and the chapters' claims are not asserted.
* ``book`` (default) -- the numbers printed in the book: at most ~10 minutes a chapter on 2 CPU
  cores. The chapters assert their claims in this profile.
* ``full`` -- a GPU, closer to the paper's scale.

Method configs pick their sizes with :func:`pick`::

    num_steps = pick(smoke=20, book=2_000, full=200_000)
"""

from __future__ import annotations

import os
from dataclasses import field
from typing import Any, TypeVar

from reprobook._validate import check_choice

PROFILES = ("smoke", "book", "full")
DEFAULT_PROFILE = "book"
ENV_VAR = "REPROBOOK_PROFILE"

T = TypeVar("T")


def profile() -> str:
    """The active profile name, read from ``REPROBOOK_PROFILE`` (default ``book``)."""
    name = os.environ.get(ENV_VAR, "").strip() or DEFAULT_PROFILE
    return check_choice(ENV_VAR, name, PROFILES)


def pick(*, smoke: T, book: T, full: T) -> T:
    """The value for the active profile, e.g. ``pick(smoke=10, book=500, full=20_000)``."""
    return {"smoke": smoke, "book": book, "full": full}[profile()]


def claims_checked() -> bool:
    """Whether chapters assert their claims: in ``book`` and ``full``, not in ``smoke``."""
    return profile() != "smoke"


def pick_default(*, smoke: T, book: T, full: T) -> Any:
    """A dataclass field whose default is :func:`pick`-ed when the instance is created (not at import), so
    a config made after ``REPROBOOK_PROFILE`` changes follows it: ``d_model: int = pick_default(smoke=32, ...)``."""
    return field(default_factory=lambda: pick(smoke=smoke, book=book, full=full))
