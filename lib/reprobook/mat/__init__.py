"""MAT: Multi-branch Attentive Transformer (Fan, Xie, Xia, Wu, Qin, Li and Liu, 2020; arXiv 2006.10270).

The surface every reprobook method shares:

* :class:`MATConfig` -- one run (branches, drop-branch rate, proximal initialisation, sizes via :func:`reprobook.pick`);
  :func:`matched_configs` -- the chapter's four parameter-matched runs;
* :class:`MultiBranchAttention`, :func:`mat_transformer`, :func:`proximal_init`, :func:`attention_maps`
  (:mod:`~reprobook.mat.model`), on top of :mod:`reprobook.nn.transformer`;
* :func:`train` -> :class:`MATResult` (model, :class:`~reprobook.train.History`, test metrics);
  :func:`evaluate` -- sacreBLEU, exact match and loss; :func:`translate`.
"""

from __future__ import annotations

from reprobook.mat.model import MultiBranchAttention, attention_maps, check_branches, mat_transformer, proximal_init
from reprobook.mat.train import (
    MATConfig,
    MATResult,
    TranslationData,
    build_model,
    evaluate,
    load_data,
    loss_on,
    matched_configs,
    train,
    translate,
)

__all__ = [
    "MATConfig",
    "MATResult",
    "MultiBranchAttention",
    "TranslationData",
    "attention_maps",
    "build_model",
    "check_branches",
    "evaluate",
    "load_data",
    "loss_on",
    "mat_transformer",
    "matched_configs",
    "proximal_init",
    "train",
    "translate",
]
