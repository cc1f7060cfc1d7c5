"""SEEK: Segmented Embedding of Knowledge Graphs (Wentao Xu, Shun Zheng, Liang He, Bin Shao, Jian Yin and
Tie-Yan Liu, ACL 2020), https://arxiv.org/abs/2005.00856; official code: https://github.com/Wentao-Xu/SEEK.

The surface every reprobook method shares (``lib/reprobook/METHODS.md``):

* :class:`SEEKConfig` -- one training run (dataset, model, sizes via :func:`reprobook.profiles.pick_default`,
  optimiser, sampler); :func:`load_data` -> :class:`~reprobook.data.kg.KnowledgeGraph`;
* :class:`SEEK` and :class:`TransE` -- the models (:mod:`~reprobook.seek.model`), built by :func:`build_model`;
  DistMult and ComplEx are ``SEEK`` with ``num_segments`` 1 and 2;
* :func:`train` -> :class:`SEEKResult` (model, :class:`~reprobook.train.History` with the ``valid_mrr`` curve,
  filtered scores of the kept checkpoint);
* :func:`evaluate` -> :class:`SEEKScores` (filtered MRR, mean rank, Hits@1/3/10); :func:`rank_triples` for
  per-relation and :func:`metrics_by_pattern` for per-pattern metrics; :func:`direction_accuracy` for antisymmetry;
* :func:`epoch_seconds` -- time per training epoch, for the study of ``k``.

The scoring functions themselves, as plain tensor functions, are in :mod:`~reprobook.seek.scoring`;
the pykeen baselines in :mod:`~reprobook.seek.baselines`; the query explorer in :mod:`~reprobook.seek.explorer`.
"""

from __future__ import annotations

from reprobook.seek.data import load_data
from reprobook.seek.evaluate import (
    Ranks,
    SEEKScores,
    direction_accuracy,
    evaluate,
    metrics_by_pattern,
    rank_triples,
)
from reprobook.seek.model import SEEK, KGEModel, LinkPredictor, TransE
from reprobook.seek.scoring import (
    check_segments,
    complex_score,
    distmult_score,
    seek_query,
    seek_score,
    segment_tables,
    transe_score,
)
from reprobook.seek.train import SEEKConfig, SEEKResult, build_model, epoch_seconds, logistic_loss, train

__all__ = [
    "SEEK",
    "KGEModel",
    "LinkPredictor",
    "Ranks",
    "SEEKConfig",
    "SEEKResult",
    "SEEKScores",
    "TransE",
    "build_model",
    "check_segments",
    "complex_score",
    "direction_accuracy",
    "distmult_score",
    "epoch_seconds",
    "evaluate",
    "load_data",
    "logistic_loss",
    "metrics_by_pattern",
    "rank_triples",
    "seek_query",
    "seek_score",
    "segment_tables",
    "train",
    "transe_score",
]
