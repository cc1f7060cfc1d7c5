"""Dual learning and multi-step dual learning: Zhibing Zhao, Yingce Xia, Tao Qin, Lirong Xia and Tie-Yan Liu, "Dual
Learning: Theoretical Study and an Algorithmic Extension", ACML 2020 (PMLR 129:321-336),
https://arxiv.org/abs/2005.08238; no official code located. Standard dual learning: Di He et al., "Dual Learning for
Machine Translation", NeurIPS 2016.

Dual learning trains a mapping and its reverse together and rewards the mapping when the reverse brings its output
back to the input; multi-step dual learning adds loops through a third domain (``X -> Y -> Z -> X``). Three levels,
on the surface every reprobook method shares (``lib/reprobook/METHODS.md``):

* :mod:`~reprobook.dual.theory` -- the theory lab: the project's teaching model (not the paper's theorems), its closed
  forms (:func:`dual_step`, :func:`multistep_step`) and a Monte-Carlo check (:func:`monte_carlo_accuracy`);
* the lexicon world (level 2): :func:`load_data` -> :class:`Lexicon`; :class:`Translators` and the exact losses
  (:func:`dual_reconstruction`, :func:`loop_reconstruction`) and the sampled one (:func:`dual_reinforce`) in
  :mod:`~reprobook.dual.model`; :class:`DualConfig`, :func:`build_model`, :func:`train` -> :class:`DualResult`;
  :func:`evaluate` -> :class:`DualScores`; the supervised baseline in :mod:`~reprobook.dual.baselines`;
* :mod:`~reprobook.dual.sequence` -- number phrases in English, French and Spanish (level 3): the sampled dual loop
  of He et al. and the multi-step loop on the shared Transformer, scored with sacreBLEU.
"""

from __future__ import annotations

from reprobook.dual.baselines import supervised, three_systems
from reprobook.dual.data import LANGUAGES, Lexicon, build_lexicon, load_data
from reprobook.dual.evaluate import (
    TWIN_GROUPS,
    DualScores,
    RoundTrip,
    correct_words,
    evaluate,
    round_trip,
    twin_resolution,
)
from reprobook.dual.model import (
    TableTranslator,
    Translator,
    Translators,
    dual_reconstruction,
    dual_reinforce,
    loop_reconstruction,
    supervised_loss,
)
from reprobook.dual.theory import (
    channel,
    cluster_bijection,
    dual_step,
    monte_carlo_accuracy,
    multistep_step,
    path_accuracy,
    product_of_experts,
    product_of_experts_matrix,
)
from reprobook.dual.train import METHODS, DualConfig, DualResult, build_model, objective, train

__all__ = [
    "LANGUAGES",
    "METHODS",
    "TWIN_GROUPS",
    "DualConfig",
    "DualResult",
    "DualScores",
    "Lexicon",
    "RoundTrip",
    "TableTranslator",
    "Translator",
    "Translators",
    "build_lexicon",
    "build_model",
    "channel",
    "cluster_bijection",
    "correct_words",
    "dual_reconstruction",
    "dual_reinforce",
    "dual_step",
    "evaluate",
    "load_data",
    "loop_reconstruction",
    "monte_carlo_accuracy",
    "multistep_step",
    "objective",
    "path_accuracy",
    "product_of_experts",
    "product_of_experts_matrix",
    "round_trip",
    "supervised",
    "supervised_loss",
    "three_systems",
    "train",
    "twin_resolution",
]
