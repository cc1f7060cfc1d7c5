"""Rate-distortion summaries: the Bjøntegaard delta rate between two R-D curves, through the ``bjontegaard`` package.

BD-rate (Bjøntegaard, VCEG-M33, 2001): fit log(rate) of each codec as a function of PSNR, integrate both over the
PSNR interval the two curves share, and report ``exp(mean difference) - 1`` in percent. Negative: the test codec
needs fewer bits than the anchor for the same PSNR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import bjontegaard
import numpy as np


def _check_curve(name: str, rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r, q = np.asarray(rate, dtype=float), np.asarray(quality, dtype=float)
    if r.ndim != 1 or r.shape != q.shape or len(r) < 3:
        raise ValueError(f"{name}: rate and PSNR must be 1-D of one length >= 3, got {r.shape} and {q.shape}")
    if not (np.all(np.isfinite(r)) and np.all(r > 0) and np.all(np.isfinite(q))):
        raise ValueError(f"{name}: rates must be positive and finite and PSNRs finite, got {r} and {q}")
    return r, q


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    low, high = max(min(a), min(b)), min(max(a), max(b))
    return max(0.0, float(high - low))


def psnr_overlap(anchor_psnr: Sequence[float], test_psnr: Sequence[float]) -> float:
    """Width in dB of the PSNR range the two curves share (0 when they do not overlap)."""
    return _overlap(anchor_psnr, test_psnr)


def rate_overlap(anchor_rate: Sequence[float], test_rate: Sequence[float]) -> float:
    """Width in bpp of the rate range the two curves share (0 when they do not overlap)."""
    return _overlap(anchor_rate, test_rate)


def _bjontegaard(
    delta: Callable[..., float],
    axis: str,
    anchor: tuple[Sequence[float], Sequence[float]],
    test: tuple[Sequence[float], Sequence[float]],
) -> float:
    """``delta`` (``bjontegaard.bd_rate`` or ``bd_psnr``) over the range of ``axis`` ("PSNR" or "rate") that the
    curves share, with piecewise-cubic interpolation (``method="pchip"``, the variant of JVET-K0491 / VTM's
    spreadsheet); each curve sorted along ``axis``."""
    ra, qa = _check_curve("anchor", *anchor)
    rt, qt = _check_curve("test", *test)
    shared_a, shared_t, unit = (qa, qt, "dB") if axis == "PSNR" else (ra, rt, "bpp")
    if _overlap(shared_a.tolist(), shared_t.tolist()) <= 0:
        raise ValueError(
            f"the curves do not overlap in {axis} (anchor {shared_a.min():.3f}-{shared_a.max():.3f} {unit}, test "
            f"{shared_t.min():.3f}-{shared_t.max():.3f} {unit}): the Bjøntegaard delta is undefined; compare at "
            "matched lambda instead"
        )
    order_a, order_t = np.argsort(shared_a), np.argsort(shared_t)
    return float(
        delta(
            ra[order_a],
            qa[order_a],
            rt[order_t],
            qt[order_t],
            method="pchip",
            require_matching_points=False,
            min_overlap=0,
        )
    )


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_psnr: Sequence[float],
    test_rate: Sequence[float],
    test_psnr: Sequence[float],
) -> float:
    """BD-rate of ``test`` against ``anchor`` in percent (negative = fewer bits), over the shared PSNR range.

    ``ValueError`` if a curve has fewer than 3 points or the curves do not overlap in PSNR.
    """
    return _bjontegaard(bjontegaard.bd_rate, "PSNR", (anchor_rate, anchor_psnr), (test_rate, test_psnr))


def bd_psnr(
    anchor_rate: Sequence[float],
    anchor_psnr: Sequence[float],
    test_rate: Sequence[float],
    test_psnr: Sequence[float],
) -> float:
    """BD-PSNR of ``test`` against ``anchor`` in dB (positive = higher quality at the same rate), over the shared
    rate range: the companion of :func:`bd_rate` when the curves share rates but not PSNRs. ``ValueError`` if the
    curves do not overlap in rate."""
    return _bjontegaard(bjontegaard.bd_psnr, "rate", (anchor_rate, anchor_psnr), (test_rate, test_psnr))
