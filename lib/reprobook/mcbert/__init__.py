"""MC-BERT: Zhenhui Xu, Linyuan Gong, Guolin Ke, Di He, Shuxin Zheng, Liwei Wang, Jiang Bian and Tie-Yan Liu,
"MC-BERT: Efficient Language Pre-Training via a Meta Controller" (2020), https://arxiv.org/abs/2006.05744;
official code (fairseq-based): https://github.com/MC-BERT/MC-BERT.

Pre-training as a multi-choice cloze test: a small meta controller corrupts the input and proposes ``K``
candidates at every position; the main model says whether each token is original (``<neither>``) or which
candidate is the true one. Beside it, BERT's masked language modelling and ELECTRA's replaced-token detection, on
one encoder at equal compute. The surface every reprobook method shares (``lib/reprobook/METHODS.md``):

* :mod:`~reprobook.mcbert.data`: the toy world's grammar, :func:`load_data` -> :class:`MCBERTData` (corpus, SEM and
  SYN tasks), :func:`sem_rule` and :func:`syn_rule` (the labels' rule evaluators);
* :mod:`~reprobook.mcbert.model`: :class:`Pretrainer` (the three objectives), :func:`build_candidates`,
  :func:`official_loss`, :class:`Classifier`;
* :mod:`~reprobook.mcbert.train`: :class:`MCBERTConfig`, :func:`build_model`, :func:`train` -> :class:`MCBERTResult`,
  :func:`step_flops`;
* :mod:`~reprobook.mcbert.evaluate`: :func:`evaluate` -> :class:`MCBERTScores` (fine-tuned SEM/SYN accuracy),
  :func:`finetune`, :func:`nearest_words`;
* :mod:`~reprobook.mcbert.baselines`: :func:`equal_compute` (BERT-MLM and ELECTRA at MC-BERT's FLOPs).
"""

from __future__ import annotations

from reprobook.mcbert.baselines import equal_compute
from reprobook.mcbert.data import MCBERTData, Task, load_data, make_world, sem_rule, syn_rule
from reprobook.mcbert.evaluate import MCBERTScores, accuracy, evaluate, finetune, nearest_words
from reprobook.mcbert.model import Classifier, Pretrainer, build_candidates, mask_tokens, official_loss
from reprobook.mcbert.train import MCBERTConfig, MCBERTResult, build_model, restore, step_flops, train

__all__ = [
    "Classifier",
    "MCBERTConfig",
    "MCBERTData",
    "MCBERTResult",
    "MCBERTScores",
    "Pretrainer",
    "Task",
    "accuracy",
    "build_candidates",
    "build_model",
    "equal_compute",
    "evaluate",
    "finetune",
    "load_data",
    "make_world",
    "mask_tokens",
    "nearest_words",
    "official_loss",
    "restore",
    "sem_rule",
    "step_flops",
    "syn_rule",
    "train",
]
