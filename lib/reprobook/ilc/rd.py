"""Rate-distortion summaries: the Bjøntegaard delta rate between two R-D curves, through the ``bjontegaard`` package.

BD-rate (Bjøntegaard, VCEG-M33, 2001): fit log(rate) of each codec as a function of PSNR, integrate both over the
PSNR interval the two curves share, and report ``exp(mean difference) - 1`` in percent. Negative: the test codec
needs fewer bits than the anchor for the same PSNR.
"""

from __future__ import annotations

from collections.abc import Sequence

import bjontegaard
import numpy as np


def _check_curve(name: str, rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r, q = np.asarray(rate, dtype=float), np.asarray(quality, dtype=float)
    if r.ndim != 1 or r.shape != q.shape or len(r) < 3:
        raise ValueError(f"{name}: rate and PSNR must be 1-D of one length >= 3, got {r.shape} and {q.shape}")
    if not (np.all(np.isfinite(r)) and np.all(r > 0) and np.all(np.isfinite(q))):
        raise ValueError(f"{name}: rates must be positive and finite and PSNRs finite, got {r} and {q}")
    return r, q


def psnr_overlap(anchor_psnr: Sequence[float], test_psnr: Sequence[float]) -> float:
    """Width in dB of the PSNR range the two curves share (0 when they do not overlap)."""
    low = max(min(anchor_psnr), min(test_psnr))
    high = min(max(anchor_psnr), max(test_psnr))
    return max(0.0, float(high - low))


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_psnr: Sequence[float],
    test_rate: Sequence[float],
    test_psnr: Sequence[float],
) -> float:
    """BD-rate of ``test`` against ``anchor`` in percent (negative = fewer bits), over the shared PSNR range.

    Uses ``bjontegaard.bd_rate`` with piecewise-cubic interpolation (``method="pchip"``, the variant of
    JVET-K0491 / VTM's spreadsheet). ``ValueError`` if a curve has fewer than 3 points or the curves do not
    overlap in PSNR.
    """
    ra, qa = _check_curve("anchor", anchor_rate, anchor_psnr)
    rt, qt = _check_curve("test", test_rate, test_psnr)
    if psnr_overlap(qa.tolist(), qt.tolist()) <= 0:
        raise ValueError(
            f"the curves do not overlap in PSNR (anchor {qa.min():.2f}-{qa.max():.2f} dB, test "
            f"{qt.min():.2f}-{qt.max():.2f} dB): BD-rate is undefined; compare at matched lambda instead"
        )
    order_a, order_t = np.argsort(qa), np.argsort(qt)
    return float(
        bjontegaard.bd_rate(
            ra[order_a],
            qa[order_a],
            rt[order_t],
            qt[order_t],
            method="pchip",
            require_matching_points=False,
            min_overlap=0,
        )
    )


def rate_overlap(anchor_rate: Sequence[float], test_rate: Sequence[float]) -> float:
    """Width in bpp of the rate range the two curves share (0 when they do not overlap)."""
    low, high = max(min(anchor_rate), min(test_rate)), min(max(anchor_rate), max(test_rate))
    return max(0.0, float(high - low))


def bd_psnr(
    anchor_rate: Sequence[float],
    anchor_psnr: Sequence[float],
    test_rate: Sequence[float],
    test_psnr: Sequence[float],
) -> float:
    """BD-PSNR of ``test`` against ``anchor`` in dB (positive = higher quality at the same rate), over the shared
    rate range: the companion of :func:`bd_rate` when the curves share rates but not PSNRs. ``ValueError`` if the
    curves do not overlap in rate."""
    ra, qa = _check_curve("anchor", anchor_rate, anchor_psnr)
    rt, qt = _check_curve("test", test_rate, test_psnr)
    if rate_overlap(ra.tolist(), rt.tolist()) <= 0:
        raise ValueError(
            f"the curves do not overlap in rate (anchor {ra.min():.3f}-{ra.max():.3f} bpp, test "
            f"{rt.min():.3f}-{rt.max():.3f} bpp): BD-PSNR is undefined"
        )
    order_a, order_t = np.argsort(ra), np.argsort(rt)
    return float(
        bjontegaard.bd_psnr(
            ra[order_a],
            qa[order_a],
            rt[order_t],
            qt[order_t],
            method="pchip",
            require_matching_points=False,
            min_overlap=0,
        )
    )
