"""Seed noise: how far apart two systems are, counted in standard errors of the difference of their means.

A chapter trains each system with a few seeds. :func:`pooled_sd` estimates the spread of one run from the
systems trained several times (each group: one system's value per seed), and :func:`margin_in_se` says how many
standard errors separate two systems' means, ``(mean(a) - mean(b)) / (sd * sqrt(1/len(a) + 1/len(b)))``, so a
system trained once can be compared with one trained three times, given the spread of a single run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def pooled_sd(*groups: Sequence[float]) -> float:
    """Pooled within-group standard deviation: ``sqrt(sum of squared deviations / (n - number of groups))``.

    Each group holds one system's values over seeds (at least two values)."""
    if not groups or any(len(g) < 2 for g in groups):
        raise ValueError(
            f"every group needs two values at least (runs with different seeds), got sizes {[len(g) for g in groups]}"
        )
    squares = sum(sum((x - statistics.fmean(g)) ** 2 for x in g) for g in groups)
    return math.sqrt(squares / (sum(len(g) for g in groups) - len(groups)))


def margin_in_se(a: Sequence[float], b: Sequence[float], sd: float) -> float:
    """``(mean(a) - mean(b))`` in standard errors of that difference, for runs whose single-run spread is ``sd``."""
    if not a or not b:
        raise ValueError(f"a and b need one value at least, got {len(a)} and {len(b)}")
    if not sd > 0:
        raise ValueError(f"sd must be > 0 (the spread of one run), got {sd}")
    return (statistics.fmean(a) - statistics.fmean(b)) / (sd * math.sqrt(1 / len(a) + 1 / len(b)))
