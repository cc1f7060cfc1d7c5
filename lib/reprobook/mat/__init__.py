"""MAT: Yang Fan, Shufang Xie, Yingce Xia, Lijun Wu, Tao Qin, Xiang-Yang Li and Tie-Yan Liu, "Multi-branch
Attentive Transformer" (2020), https://arxiv.org/abs/2006.10270; official code (fairseq-based):
https://github.com/HA-Transformer/MAT.

Every attention of a Transformer becomes the average of ``N_a`` independent multi-head attentions ("branches"),
trained with drop-branch and, optionally, proximal initialisation from a trained Transformer. The surface every
reprobook method shares (``lib/reprobook/METHODS.md``):

* :mod:`~reprobook.mat.model`: :class:`MultiBranchAttention`, :func:`mat_transformer`, :func:`proximal_init`,
  :func:`attention_maps`, on top of :mod:`reprobook.nn.transformer`;
* :mod:`~reprobook.mat.data`: :func:`load_data` -> :class:`TranslationData` (number phrases French -> English,
  or IWSLT14 de->en);
* :mod:`~reprobook.mat.train`: :class:`MATConfig` (one run: branches, drop-branch rate, proximal initialisation,
  sizes by profile, best or last checkpoint), :func:`build_model`, :func:`train` -> :class:`MATResult`, and
  :func:`train_seeds` (several systems on the same seeds, several runs at a time);
* :mod:`~reprobook.mat.evaluate`: :func:`evaluate` -> :class:`MATScores` (sacreBLEU, exact match, loss),
  :func:`translate`, :func:`loss_on`, and :func:`paired_difference` -> :class:`PairedDifference` (a paired
  t-interval over seeds);
* :mod:`~reprobook.mat.baselines`: :func:`matched_transformer` and :func:`matched_configs`, the chapter's four
  parameter-matched runs.
"""

from __future__ import annotations

from reprobook.mat.baselines import matched_configs, matched_transformer
from reprobook.mat.data import TranslationData, load_data
from reprobook.mat.evaluate import MATScores, PairedDifference, evaluate, loss_on, paired_difference, translate
from reprobook.mat.model import MultiBranchAttention, attention_maps, check_branches, mat_transformer, proximal_init
from reprobook.mat.train import MATConfig, MATResult, build_model, train, train_seeds

__all__ = [
    "MATConfig",
    "MATResult",
    "MATScores",
    "MultiBranchAttention",
    "PairedDifference",
    "TranslationData",
    "attention_maps",
    "build_model",
    "check_branches",
    "evaluate",
    "load_data",
    "loss_on",
    "mat_transformer",
    "matched_configs",
    "matched_transformer",
    "paired_difference",
    "proximal_init",
    "train",
    "train_seeds",
    "translate",
]
