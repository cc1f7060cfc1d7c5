"""Translators between the lexicon's languages and the losses of dual and multi-step dual learning.

A translator ``f_{A->B}`` is a softmax classifier over the target vocabulary: it maps the source word's vector
linearly and scores every target word by its squared distance to the image, with a learnt sharpness ``beta``::

    f(y | x) = softmax_y( -exp(beta) ||W_{AB}^T v_{A,x} - v_{B,y}||^2 )

(a linear map between embedding spaces, as in word-translation work since Mikolov et al., 2013). With every word of
a language in one matrix, ``log_probs`` is the whole ``(K_A, K_B)`` table of ``log f(y | x)``, so the expectations
of dual learning are exact sums rather than samples:

* supervised: ``-log f(y* | x)`` on the seed pairs;
* **standard dual** (He et al., 2016), the expected reconstruction of every monolingual word ``x``::

      R_dual(x) = sum_y f(y | x) log g(x | y)                          (maximised; loss = -mean_x R)

  Its gradient in ``f`` is the exact policy gradient with reward ``log g(x | y)``; in ``g`` it is maximum likelihood
  on ``(y -> x)`` weighted by ``f(y | x)``: the two gradients of He et al.'s algorithm, without sampling;
* **multi-step** (Zhao et al., 2020), a loop through a third language ``X -> Y -> Z -> X``::

      R_loop(x) = sum_{y, z} f(y | x) h(z | y) log k(x | z)

  which gives every mapping on the loop feedback from the reconstruction of ``x``.

:func:`dual_reinforce` is the sampled form (He et al.'s REINFORCE with ``K`` samples and a baseline), for when the
intermediate space is too large to sum over, as with sentences; its gradient is unbiased for the exact one.
:class:`TableTranslator` has one free logit per word pair: with it, *any* pair of inverse permutations maximises the
dual reconstruction (the fixed points that make the supervised warm start necessary).
"""

from __future__ import annotations

from itertools import pairwise, permutations

import torch
import torch.nn.functional as F
from torch import nn

from reprobook._validate import check_int
from reprobook.dual.data import Lexicon


def _check_tables(*tables: torch.Tensor) -> None:
    for i, table in enumerate(tables):
        if table.ndim != 2:
            raise ValueError(f"log-probability table {i} must be 2-D (source words, target words), got {table.shape}")
    for i, (a, b) in enumerate(pairwise(tables)):
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"tables {i} and {i + 1} do not chain: {tuple(a.shape)} then {tuple(b.shape)}")
    if tables[-1].shape[1] != tables[0].shape[0]:
        raise ValueError(
            f"the last table must map back to the first one's source words: {tuple(tables[-1].shape)} "
            f"does not end in {tables[0].shape[0]} words"
        )


class Translator(nn.Module):
    """``log f(y | x) = log_softmax_y(-exp(beta) ||W^T v_x - v_y||^2)``: ``forward(source (K_A, d_w), target
    (K_B, d_w)) -> (K_A, K_B)``. A linear map ``W`` and a learnt sharpness ``beta``."""

    def __init__(self, word_dim: int, init_scale: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(init_scale * torch.randn(word_dim, word_dim))
        self.sharpness = nn.Parameter(torch.zeros(()))

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mapped = source @ self.weight
        distance = mapped.square().sum(-1, keepdim=True) - 2 * mapped @ target.T + target.square().sum(-1)
        return (-self.sharpness.exp() * distance).log_softmax(-1)


class TableTranslator(nn.Module):
    """A free logit per ``(x, y)``: ``forward() -> (K_A, K_B)`` log-probabilities. No features, no generalisation."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self) -> torch.Tensor:
        return self.logits.log_softmax(-1)


class Translators(nn.Module):
    """One :class:`Translator` per ordered pair of ``languages``; ``tables(lexicon)`` gives every log-prob table."""

    def __init__(self, languages: tuple[str, ...], word_dim: int, init_scale: float = 0.0) -> None:
        super().__init__()
        self.languages = languages
        self.directions = list(permutations(languages, 2))
        self.maps = nn.ModuleDict({f"{a}>{b}": Translator(word_dim, init_scale) for a, b in self.directions})

    def translator(self, source: str, target: str) -> Translator:
        key = f"{source}>{target}"
        if key not in self.maps:
            raise ValueError(f"no translator {source} -> {target}; languages: {', '.join(self.languages)}")
        translator: Translator = self.maps[key]  # type: ignore[assignment]
        return translator

    def log_probs(self, lexicon: Lexicon, source: str, target: str) -> torch.Tensor:
        """``log f(y | x)`` for every word pair, ``(K, K)``."""
        words = lexicon.words(source), lexicon.words(target)  # unknown languages are refused here, by name
        return self.translator(source, target)(*words)

    def tables(self, lexicon: Lexicon) -> dict[tuple[str, str], torch.Tensor]:
        """Every direction's ``(K, K)`` log-probability table."""
        return {(a, b): self.log_probs(lexicon, a, b) for a, b in self.directions}

    def predict(self, lexicon: Lexicon, source: str, target: str) -> torch.Tensor:
        """The most likely translation of every ``source`` word, ``(K,)`` target word ids."""
        with torch.no_grad():
            return self.log_probs(lexicon, source, target).argmax(-1)


def supervised_loss(log_probs: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean ``-log f(y* | x)`` over seed pairs: words ``source[i]`` and ``target[i]`` (ids into the table)."""
    if len(source) == 0:
        raise ValueError("the seed dictionary is empty: supervised training needs at least one seed pair")
    return F.nll_loss(log_probs[source], target)


def dual_reconstruction(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """``R(x) = sum_y f(y | x) log g(x | y)`` for every source word: ``(K_A,)``, exact (no sampling).

    ``forward``: ``log f``, ``(K_A, K_B)``; ``backward``: ``log g``, ``(K_B, K_A)``."""
    _check_tables(forward, backward)
    return (forward.exp() * backward.T).sum(-1)


def loop_reconstruction(first: torch.Tensor, second: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
    """``R(x) = sum_{y, z} f(y | x) h(z | y) log k(x | z)``: the loop ``X -> Y -> Z -> X``, ``(K_A,)``, exact.

    ``first``: ``log f`` ``(K_A, K_B)``, ``second``: ``log h`` ``(K_B, K_C)``, ``back``: ``log k`` ``(K_C, K_A)``."""
    _check_tables(first, second, back)
    path = first.exp() @ second.exp()  # P(z | x) through Y, (K_A, K_C)
    return (path * back.T).sum(-1)


def dual_reinforce(
    forward: torch.Tensor,
    backward: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    baseline: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampled dual loss of He et al. (2016): ``(surrogate, rewards)``.

    For every source word ``x``, draw ``y_1..y_K ~ f(. | x)``; the reward ``r_k = log g(x | y_k)`` (no gradient).
    The surrogate ``-mean_k [(r_k - b_k) log f(y_k | x) + log g(x | y_k)]`` has as gradient, in expectation, minus
    the gradient of :func:`dual_reconstruction` (mean over ``x``): REINFORCE for ``f``, maximum likelihood on the
    sampled pairs for ``g``. ``baseline``: ``b_k`` = the mean reward of the *other* ``K - 1`` samples (a
    leave-one-out baseline keeps the estimate unbiased and cuts its variance); else ``b_k = 0``.
    Returns the scalar surrogate and the rewards ``(K_A, num_samples)``."""
    _check_tables(forward, backward)
    check_int("num_samples", num_samples, 2 if baseline else 1)
    with torch.no_grad():
        samples = torch.multinomial(forward.exp(), num_samples, replacement=True, generator=generator)
    source = torch.arange(len(forward), device=forward.device)[:, None].expand_as(samples)
    log_f = forward.gather(1, samples)
    log_g = backward[samples, source]
    rewards = log_g.detach()
    if baseline:
        others = (rewards.sum(1, keepdim=True) - rewards) / (num_samples - 1)
        advantage = rewards - others
    else:
        advantage = rewards
    surrogate = -(advantage * log_f + log_g).mean()
    return surrogate, rewards
