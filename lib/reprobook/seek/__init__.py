"""SEEK: Segmented Embedding of Knowledge Graphs (Xu, Zheng, He, Shao, Yin and Liu, ACL 2020).

The surface every reprobook method shares:

* :class:`SEEKConfig` -- one training run (model, sizes via :func:`reprobook.pick`, optimiser, sampler);
* :class:`SEEK` and :class:`TransE` -- the models (:mod:`~reprobook.seek.model`); DistMult and ComplEx
  are ``SEEK`` with ``num_segments`` 1 and 2;
* :func:`train` -> :class:`TrainResult` (model, :class:`~reprobook.train.History`, filtered metrics);
* :func:`evaluate` -- filtered MRR and Hits@1/3/10; :func:`rank_triples` for per-relation and
  :func:`metrics_by_pattern` for per-pattern metrics; :func:`direction_accuracy` for antisymmetry;
* :func:`epoch_seconds` -- time per training epoch, for the study of ``k``.

The scoring functions themselves, as plain tensor functions, are in :mod:`~reprobook.seek.scoring`;
the pykeen baselines in :mod:`~reprobook.seek.anchor`; the query explorer in :mod:`~reprobook.seek.explorer`.
"""

from __future__ import annotations

from reprobook.seek.evaluate import Ranks, direction_accuracy, evaluate, metrics_by_pattern, rank_triples
from reprobook.seek.model import SEEK, KGEModel, TransE, check_triples
from reprobook.seek.scoring import (
    check_segments,
    complex_score,
    distmult_score,
    seek_query,
    seek_score,
    segment_tables,
    transe_score,
)
from reprobook.seek.train import SEEKConfig, TrainResult, build_model, epoch_seconds, logistic_loss, train

__all__ = [
    "SEEK",
    "KGEModel",
    "Ranks",
    "SEEKConfig",
    "TrainResult",
    "TransE",
    "build_model",
    "check_segments",
    "check_triples",
    "complex_score",
    "direction_accuracy",
    "distmult_score",
    "epoch_seconds",
    "evaluate",
    "logistic_loss",
    "metrics_by_pattern",
    "rank_triples",
    "seek_query",
    "seek_score",
    "segment_tables",
    "train",
    "transe_score",
]
