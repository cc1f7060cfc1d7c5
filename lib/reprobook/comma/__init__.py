"""CoMMA: Yi Ren, Jinglin Liu, Xu Tan, Zhou Zhao, Sheng Zhao and Tie-Yan Liu, "A Study of Non-autoregressive Model
for Sequence Generation" (ACL 2020), https://arxiv.org/abs/2004.10454; no official code located.

An analysis model for how much a sequence-generation task's target tokens depend on each other: mask a fraction
``p`` of the target, predict it with one mix-attention over source and target, and measure the attention density
ratio ``R(p)``. The surface every reprobook method shares (``lib/reprobook/METHODS.md``):

* :mod:`~reprobook.comma.data`: :func:`load_data` -> :class:`CoMMAData` for the ``nmt``, ``asr`` and ``tts``
  toy tasks, :func:`renderings` (the multi-modal English), the alignment targets;
* :mod:`~reprobook.comma.model`: :class:`CoMMA`, :class:`MixAttention`, :func:`mask_targets`,
  :func:`density_ratio`, :func:`comma_loss`, :func:`alignment_loss`;
* :mod:`~reprobook.comma.train`: :class:`CoMMAConfig`, :func:`build_model`, :func:`train` -> :class:`CoMMAResult`;
* :mod:`~reprobook.comma.evaluate`: :func:`evaluate` -> :class:`CoMMAScores`, :func:`ratio_curve`, :data:`P_GRID`;
* :mod:`~reprobook.comma.baselines`: :class:`ARModel` (the AR baseline and distillation teacher), :func:`distill`.
"""

from __future__ import annotations

from reprobook.comma.baselines import ARModel, distill
from reprobook.comma.data import CoMMAData, Item, collate, diagonal_alignment, duration_alignment, load_data, renderings
from reprobook.comma.evaluate import P_GRID, CoMMAScores, error_rate, evaluate, generate, ratio_curve
from reprobook.comma.model import CoMMA, MixAttention, alignment_loss, comma_loss, density_ratio, mask_targets
from reprobook.comma.train import CoMMAConfig, CoMMAResult, build_model, train

__all__ = [
    "P_GRID",
    "ARModel",
    "CoMMA",
    "CoMMAConfig",
    "CoMMAData",
    "CoMMAResult",
    "CoMMAScores",
    "Item",
    "MixAttention",
    "alignment_loss",
    "build_model",
    "collate",
    "comma_loss",
    "density_ratio",
    "diagonal_alignment",
    "distill",
    "duration_alignment",
    "error_rate",
    "evaluate",
    "generate",
    "load_data",
    "mask_targets",
    "ratio_curve",
    "renderings",
    "train",
]
