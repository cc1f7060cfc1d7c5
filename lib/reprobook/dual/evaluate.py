"""Held-out word-translation accuracy of the lexicon translators, direction by direction and word by word.

A word is translated right when its most likely translation (argmax of ``f(. | x)``) is the word of the same concept.
``"test"`` scores the concepts in no seed dictionary; ``"train"`` those in at least one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from reprobook._validate import check_choice
from reprobook.dual.data import Lexicon
from reprobook.dual.model import Translators
from reprobook.dual.theory import product_of_experts
from reprobook.nn import eval_mode
from reprobook.train import Scores

SPLITS = ("train", "test")
PAIR = ("X", "Y")
"""The pair the chapter's claims are about (``Z`` is the third language)."""


@dataclass(kw_only=True)
class DualScores(Scores):
    """Held-out accuracy in ``[0, 1]``: ``accuracy`` over all six directions, ``accuracy_xy`` over ``X -> Y`` and
    ``Y -> X``, ``directions[(a, b)]`` per direction; ``num_words`` the number of words scored per direction."""

    accuracy: float
    accuracy_xy: float
    directions: dict[tuple[str, str], float] = field(default_factory=dict)
    num_words: int = 0

    def row(self) -> dict[str, Any]:
        return {"method": self.label, "accuracy": self.accuracy, "X<->Y accuracy": self.accuracy_xy}


def correct_words(model: Translators, data: Lexicon, source: str, target: str) -> torch.Tensor:
    """Bool ``(K,)``: whether each ``source`` word's best ``target`` translation is right (every concept)."""
    with eval_mode(model):
        predicted = model.predict(data, source, target)
    return predicted == torch.arange(data.num_words)


@dataclass(frozen=True)
class RoundTrip:
    """The teaching model's quantities, measured on a pair of trained translators (``source -> target`` and back).

    ``p``: mean probability ``f`` puts on the right word; ``q``: mean probability ``g`` returns the source word from
    the right word; ``echo``: mean probability ``g`` returns it from ``f``'s wrong words (weighted by ``f``);
    ``predicted``: the mean over words of Eq. (2)'s ``p'`` from each word's own ``p``, ``q`` and echo (the formula
    on the three averages is biased when words differ, by Jensen's inequality); ``one_step``: the exact mean
    probability of the right word under ``f' ∝ f g``, renormalised (the two agree: Eq. (2) is exact word by word,
    given the word's echo); ``agrees``: bool per scored word, whether ``f g`` ranks the right word first."""

    p: float
    q: float
    echo: float
    predicted: float
    one_step: float
    agrees: torch.Tensor


def round_trip(
    model: Translators, data: Lexicon, source: str = "X", target: str = "Y", split: str = "test"
) -> RoundTrip:
    """Measure :class:`RoundTrip` on the words of ``split``: how one exact dual step would change ``f``."""
    ids = data.test if check_choice("split", split, SPLITS) == "test" else data.train
    rows = torch.arange(len(ids))
    with eval_mode(model), torch.no_grad():
        f = model.log_probs(data, source, target).exp()[ids]  # (n, K): f(y | x) for the scored x
        back = model.log_probs(data, target, source).exp()[:, ids].T  # (n, K): g(x | y)
    wrong = f.clone()
    wrong[rows, ids] = 0.0
    p_word, q_word = f[rows, ids], back[rows, ids]
    echo_word = (wrong * back).sum(1) / wrong.sum(1).clamp_min(1e-30)
    per_word = [
        product_of_experts(min(float(pw), 1.0), [(min(float(qw), 1.0), min(float(ew), 1.0))])
        for pw, qw, ew in zip(p_word, q_word, echo_word)
    ]
    product = f * back
    product = product / product.sum(1, keepdim=True).clamp_min(1e-30)
    return RoundTrip(
        p=float(p_word.mean()),
        q=float(q_word.mean()),
        echo=float(echo_word.mean()),
        predicted=sum(per_word) / len(per_word),
        one_step=float(product[rows, ids].mean()),
        agrees=product.argmax(1) == ids,
    )


TWIN_GROUPS = ("held out", "seen", "all")
"""Which held-out words :func:`twin_resolution` scores: twin held out too, twin not held out, every one."""


def twin_resolution(
    model: Translators, data: Lexicon, source: str = "X", target: str = "Y", twins: str = "held out"
) -> float:
    """In the twin world: of the held-out words whose best translation is the right word or its twin, the fraction
    that picks the right one (``0.5`` is a coin flip between near-synonyms); NaN if no word lands in its pair.

    ``twins="held out"`` (default) scores only words whose twin is held out too: pairs the seed dictionaries say
    nothing about, the setting of Eq. (2) with a dual at chance between twins. ``"seen"`` scores the words whose twin
    is outside the held-out set (it may sit in a seed dictionary, which tells a one-to-one translator which word of
    the pair is taken), ``"all"`` every held-out word.
    """
    if data.twin is None:
        raise ValueError("twin_resolution needs a twin world (a lexicon drawn with twin_gap)")
    check_choice("twins", twins, TWIN_GROUPS)
    with eval_mode(model):
        predicted = model.predict(data, source, target)[data.test]
    twins_of_test = data.twin[data.test]
    twin_held_out = torch.isin(twins_of_test, data.test)
    scored = {"held out": twin_held_out, "seen": ~twin_held_out, "all": torch.ones_like(twin_held_out)}[twins]
    right, twin = (predicted == data.test) & scored, (predicted == twins_of_test) & scored
    landed = int((right | twin).sum())
    return float(right.sum()) / landed if landed else math.nan


def evaluate(model: Translators, data: Lexicon, split: str = "test", *, label: str = "") -> DualScores:
    """Word-translation accuracy on the concepts of ``split`` (``"test"``: held out of every seed dictionary)."""
    ids = data.test if check_choice("split", split, SPLITS) == "test" else data.train
    directions = {(a, b): float(correct_words(model, data, a, b)[ids].float().mean()) for a, b in model.directions}
    pair = [directions[PAIR], directions[PAIR[::-1]]]
    return DualScores(
        label=label,
        accuracy=sum(directions.values()) / len(directions),
        accuracy_xy=sum(pair) / 2,
        directions=directions,
        num_words=len(ids),
    )
