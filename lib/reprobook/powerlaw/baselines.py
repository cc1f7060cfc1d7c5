"""What the power-law dynamic and the noisy large-batch SGD are compared with.

* :func:`langevin`: the constant-noise SDE of the classic analyses (Langevin dynamics), by default at the power
  law's own noise level at the minimum (``c0`` kept, ``c1 = 0``), so that the two differ only away from it.
* :func:`small_batch`, :func:`large_batch`, :func:`matched_constant`: the SGD runs beside "large batch +
  state-dependent noise": plain SGD with small and with large batches, and large batches with constant noise of
  the same *average* power as a state-dependent run's.
"""

from __future__ import annotations

import math
from dataclasses import replace

from reprobook._validate import check_float, check_int
from reprobook.powerlaw.dynamics import Basin
from reprobook.powerlaw.train import PowerLawConfig


def langevin(basin: Basin, c0: float | None = None) -> Basin:
    """``basin`` with constant noise: ``c1 = 0`` and ``c0`` (default: ``basin.c0``, the same level at the
    minimum)."""
    return replace(basin, c0=basin.c0 if c0 is None else check_float("c0", c0, 0, open_low=True), c1=0.0)


def small_batch(config: PowerLawConfig, batch_size: int = 16) -> PowerLawConfig:
    """Plain SGD with small batches (``batch_size``), the rest of ``config`` kept."""
    return replace(config, batch_size=check_int("batch_size", batch_size, 1), noise="none")


def large_batch(config: PowerLawConfig) -> PowerLawConfig:
    """Plain SGD at ``config``'s (large) batch size, no added noise."""
    return replace(config, noise="none")


def matched_constant(config: PowerLawConfig, mean_noise_power: float) -> PowerLawConfig:
    """Large batches plus constant noise whose power equals ``mean_noise_power``: the average power of a
    state-dependent run (:attr:`~reprobook.powerlaw.train.PowerLawResult.mean_noise_power`)."""
    check_float("mean_noise_power", mean_noise_power, 0)
    return replace(config, noise="constant", noise_scale=math.sqrt(mean_noise_power))
