"""Scoring a translation model: corpus BLEU (sacreBLEU), exact-match accuracy and token-level loss.

:func:`paired_difference` compares two systems trained on the same seeds: the mean of their per-seed differences
with a t-interval, and how many seeds a given difference needs to be told from seed noise.

Every function here runs the model inside :func:`reprobook.nn.eval_mode` (dropout and drop-branch off, all
branches averaged with ``1/N_a``) and gives it back in the mode it had, so probing a model halfway through training
changes nothing in the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from scipy import stats

from reprobook._validate import check_choice, check_float, check_int
from reprobook.mat.data import TranslationData
from reprobook.mat.model import MultiBranchAttention
from reprobook.metrics.text import bleu
from reprobook.nn import eval_mode
from reprobook.nn.transformer import Seq2SeqTransformer, beam_search, greedy_decode, label_smoothed_loss
from reprobook.train import Scores

SPLITS = ("train", "valid", "test")


@dataclass(kw_only=True)
class MATScores(Scores):
    """Corpus BLEU (0-100), exact-match accuracy in % and token-level cross-entropy on one split."""

    bleu: float
    exact: float
    loss: float

    def row(self) -> dict[str, Any]:
        return {"method": self.label, "BLEU": self.bleu, "exact match (%)": self.exact, "loss": self.loss}


def loss_on(model: Seq2SeqTransformer, data: TranslationData, pairs: Sequence[tuple[str, str]]) -> float:
    """Token-level cross-entropy (no smoothing) in eval mode: the number the train/valid gap is measured in."""
    with eval_mode(model), torch.no_grad():
        src, tgt = data.encode(pairs)
        return float(label_smoothed_loss(model(src, tgt[:, :-1]), tgt[:, 1:], smoothing=0.0))


def translate(
    model: Seq2SeqTransformer,
    data: TranslationData,
    sentences: Sequence[str],
    *,
    beam_size: int = 1,
    max_len: int | None = None,
    strict: bool = True,
) -> list[str]:
    """Translate source ``sentences`` (greedy for ``beam_size=1``, else beam search with length penalty 1).

    Outputs stop at ``max_len`` tokens (default: twice the longest source, at least 32).

    ``strict=True`` rejects words the model never saw (``ValueError``); ``False`` reads them as ``<unk>``,
    as test-set evaluation must."""
    if isinstance(sentences, str):
        raise TypeError("sentences must be a list of strings, got a single string")
    check_int("beam_size", beam_size, 1)
    src = data.encode_source(sentences, strict)
    bos, eos = data.tgt_vocab.bos_id, data.tgt_vocab.eos_id
    max_len = max(32, 2 * src.shape[1]) if max_len is None else check_int("max_len", max_len, 1)
    with eval_mode(model), torch.no_grad():
        ids = (
            greedy_decode(model, src, bos, eos, max_len)
            if beam_size == 1
            else beam_search(model, src, bos, eos, beam_size, max_len)
        )
    return [data.tgt_vocab.decode(row) for row in ids]


def model_label(model: Seq2SeqTransformer) -> str:
    """``"Transformer"`` or ``"MAT N_a=..."``: the label of a model's scores when no config names it."""
    branches = [m.num_branches for m in model.modules() if isinstance(m, MultiBranchAttention)]
    return f"MAT N_a={branches[0]}" if branches else "Transformer"


def evaluate(
    model: Seq2SeqTransformer,
    data: TranslationData,
    split: str = "test",
    *,
    beam_size: int = 1,
    label: str | None = None,
) -> MATScores:
    """Corpus BLEU (sacreBLEU), exact-match accuracy in % and loss on ``split`` (``"train"``, ``"valid"`` or
    ``"test"``), translating 256 sentences at a time; words the training data lacks are read as ``<unk>``.

    ``label`` names the model in :meth:`MATScores.row` (default: :func:`model_label`)."""
    pairs = getattr(data, check_choice("split", split, SPLITS))
    hypotheses: list[str] = []
    for i in range(0, len(pairs), 256):
        batch = [s for s, _ in pairs[i : i + 256]]
        hypotheses += translate(model, data, batch, beam_size=beam_size, strict=False)
    references = [t for _, t in pairs]
    exact = 100.0 * sum(h == r for h, r in zip(hypotheses, references)) / len(pairs)
    return MATScores(
        label=model_label(model) if label is None else label,
        bleu=bleu(hypotheses, references),
        exact=exact,
        loss=loss_on(model, data, pairs),
    )


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` over ``n`` paired runs (one pair per seed): mean, standard deviation of the differences and a
    two-sided t-interval on the mean at ``confidence``."""

    mean: float
    sd: float
    low: float
    high: float
    n: int
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely above or below zero: a difference told apart from seed noise."""
        return self.low > 0 or self.high < 0

    def seeds_for(self, effect: float, power: float = 0.8) -> int:
        """The number of seeds at which a true difference of ``effect`` gives an interval that excludes zero with
        probability ``power``, if the differences spread as these did: the smallest ``n`` with
        ``(t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n) <= effect``."""
        check_float("effect", effect, 0.0, open_low=True)
        check_float("power", power, 0.5, 1.0, open_high=True)
        alpha = 1.0 - self.confidence
        for n in range(2, 100_000):
            quantiles = stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)
            if quantiles * self.sd / math.sqrt(n) <= effect:
                return n
        raise ValueError(f"more than 100,000 seeds would be needed for effect={effect} with sd={self.sd:.3g}")

    def row(self) -> dict[str, Any]:
        """One line of a table: mean, the interval, sd and n."""
        level = f"{100 * self.confidence:g} % interval"
        return {"mean": self.mean, level: f"[{self.low:+.2f}, {self.high:+.2f}]", "sd": self.sd, "seeds": self.n}


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """The paired comparison of ``a`` and ``b`` (``a[i]`` and ``b[i]`` from the same seed): mean of ``a - b``, the
    standard deviation of the differences and Student's t-interval on their mean (a paired t-test rejects
    "no difference" at level ``1 - confidence`` exactly when the interval excludes zero)."""
    if len(a) != len(b):
        raise ValueError(f"a and b must pair up seed by seed, got {len(a)} and {len(b)} values")
    if len(a) < 2:
        raise ValueError(f"a paired interval needs at least 2 pairs, got {len(a)}")
    check_float("confidence", confidence, 0.0, 1.0, open_low=True, open_high=True)
    differences = [float(x) - float(y) for x, y in zip(a, b)]
    for value in differences:
        check_float("a - b", value)
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return PairedDifference(mean, sd, mean - half, mean + half, n, confidence)
