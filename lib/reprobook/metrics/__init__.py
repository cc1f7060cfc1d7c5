"""The numbers the chapters report, one module per kind of data.

* :mod:`~reprobook.metrics.image`: :func:`psnr`, :func:`ssim` (optionally on the Y channel with a
  border crop, the super-resolution convention) and :func:`rgb_to_y`.
* :mod:`~reprobook.metrics.text`: :func:`bleu` (corpus BLEU through sacrebleu), :func:`wer`, :func:`cer`.
* :mod:`~reprobook.metrics.ranking`: :func:`realistic_ranks`, :class:`TripleFilter`,
  :func:`filtered_ranks` and :func:`ranking_metrics` (filtered MRR and Hits@k for link prediction), and
  :func:`filter_bitmask` (the filter as the bitmask of :func:`reprobook.kernels.kg_rank_counts`).
* :mod:`~reprobook.metrics.seeds`: :func:`pooled_sd` and :func:`margin_in_se` (seed noise: how many standard
  errors separate two systems trained with a few seeds each).
"""

from __future__ import annotations

from reprobook.metrics.image import psnr, rgb_to_y, ssim
from reprobook.metrics.ranking import TripleFilter, filter_bitmask, filtered_ranks, ranking_metrics, realistic_ranks
from reprobook.metrics.seeds import margin_in_se, pooled_sd
from reprobook.metrics.text import bleu, cer, wer

__all__ = [
    "TripleFilter",
    "bleu",
    "cer",
    "filter_bitmask",
    "filtered_ranks",
    "margin_in_se",
    "pooled_sd",
    "psnr",
    "ranking_metrics",
    "realistic_ranks",
    "rgb_to_y",
    "ssim",
    "wer",
]
