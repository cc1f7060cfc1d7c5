"""The theory lab: a small probabilistic model of when dual learning helps, its closed forms and a Monte-Carlo check.

**This model is the project's own teaching model** (``shared/papers/dual.md``), built to carry the abstract's message;
it is not the formalism or a theorem of Zhao et al. (2020), whose text could not be read for this book.

Finite domains ``X``, ``Y`` (and ``Z``) of ``N`` words with ground-truth bijections between them. The words fall into
*confusion clusters* of ``m + 1`` words that mean nearly the same thing; the bijections map clusters onto clusters.
A translator is a row-stochastic matrix. It is **correct with probability** ``p`` and, when wrong, either

* ``"cluster"``: spreads its error uniformly over the ``m`` other words of the right word's cluster (its confusions
  are *aligned* with every other translator's: correlated errors); or
* ``"spread"``: spreads it uniformly over all ``N - 1`` other words (errors unrelated to the clusters).

**Dual learning as reward weighting.** Rewarding ``f(y | x)`` by how likely the dual ``g`` brings ``y`` back to ``x``
is, in one exact step, the product of experts ``f'(y | x) ∝ f(y | x) g(x | y)``: it is the maximiser of
``E_{y ~ f'}[log g(x | y)] - KL(f' || f)`` (a mirror-ascent step of the expected reconstruction log-likelihood), and
it is what one gets by keeping only the round trips ``x -> y -> x̂`` that return ``x̂ = x``. For each expert ``i`` let
``a_i`` be its probability of returning ``x`` from the right ``y`` and ``e_i`` (its *echo*) from a confusable wrong
``y``; then the translator stays in the family, with accuracy::

    p_new = p prod_i a_i / (p prod_i a_i + (1 - p) prod_i e_i)

The dual (``a = q``) echoes ``e = (1 - q) / m`` with cluster errors and ``(1 - q) / (N - 1)`` with spread errors, so
with aligned confusions::

    p' = p q / (p q + (1 - p)(1 - q) / m),      p' > p  <=>  q > 1 / (m + 1)

**dual learning helps exactly when the dual beats chance within the primal's confusion set**. A loop through a third
domain ``X -> Y -> Z -> X`` is one more expert, the path ``Y -> Z -> X``: with cluster errors it is correct with
probability ``s = q1 q2 + (1 - q1)(1 - q2) / m`` and echoes ``(1 - s) / m`` (two confusions can cancel), with spread
errors ``s = q1 q2 + (1 - q1)(1 - q2) / (N - 1)``; it adds to the standard dual step exactly when ``s`` beats its own
echo. A path whose errors are *not* aligned with the clusters resolves confusions the dual cannot.

:func:`channel` builds the matrices, :func:`product_of_experts` applies the exact step to them, and
:func:`monte_carlo_accuracy` estimates the new accuracy from sampled round trips, with its standard error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from reprobook._validate import check_choice, check_float, check_int

ERRORS = ("cluster", "spread")


def _probability(argument: str, value: float) -> float:
    return check_float(argument, value, 0.0, 1.0)


def check_domain(num_words: int, confusions: int) -> None:
    """``N >= 2`` words, ``1 <= m < N`` confusions, and ``m + 1`` dividing ``N`` (whole clusters), or ``ValueError``."""
    check_int("confusions", confusions, 1)
    check_int("num_words", num_words, 2)
    if confusions >= num_words:
        raise ValueError(
            f"confusions={confusions} is a confusion set larger than the domain allows: with num_words={num_words} "
            f"a word has at most {num_words - 1} other words to be confused with"
        )
    if num_words % (confusions + 1):
        raise ValueError(
            f"num_words={num_words} must be a multiple of the cluster size confusions + 1 = {confusions + 1}"
        )


def echo(q: float, confusions: int, num_words: int, errors: str = "cluster") -> float:
    """Probability that a channel of accuracy ``q`` returns ``x`` from one *confusable wrong* word of ``x``.

    ``(1 - q) / m`` with ``"cluster"`` errors, ``(1 - q) / (N - 1)`` with ``"spread"`` errors."""
    _probability("q", q)
    check_domain(num_words, confusions)
    check_choice("errors", errors, ERRORS)
    return (1.0 - q) / (confusions if errors == "cluster" else num_words - 1)


def dual_step(p: float, q: float, confusions: int, num_words: int | None = None, errors: str = "cluster") -> float:
    """``p'``: the primal's accuracy after one exact dual step ``f' ∝ f g`` with a dual of accuracy ``q``.

    Cluster errors: ``p q / (p q + (1 - p)(1 - q) / m)``. NaN when ``f g`` vanishes on every candidate."""
    _probability("p", p)
    return product_of_experts(p, [(q, echo(q, confusions, num_words or confusions + 1, errors))])


def path_accuracy(
    q1: float, q2: float, confusions: int, num_words: int | None = None, errors: str = "cluster"
) -> float:
    """Accuracy ``s`` of two channels in a row (``Y -> Z -> X``): right twice, or wrong and wrong back to ``x``.

    ``q1 q2 + (1 - q1)(1 - q2) / m`` (``/ (N - 1)`` with spread errors); the composition is again such a channel."""
    _probability("q1", q1)
    _probability("q2", q2)
    size = num_words or confusions + 1
    return q1 * q2 + (1.0 - q1) * echo(q2, confusions, size, errors)


def multistep_step(
    p: float,
    q: float,
    q_yz: float,
    q_zx: float,
    confusions: int,
    num_words: int | None = None,
    dual_errors: str = "cluster",
    path_errors: str = "cluster",
) -> float:
    """``p''``: the primal's accuracy after ``f'' ∝ f g P_{Y->Z->X}``, the dual and the loop through ``Z`` together."""
    _probability("p", p)
    size = num_words or confusions + 1
    s = path_accuracy(q_yz, q_zx, confusions, size, path_errors)
    experts = [(q, echo(q, confusions, size, dual_errors)), (s, echo(s, confusions, size, path_errors))]
    return product_of_experts(p, experts)


def product_of_experts(p: float, experts: Sequence[tuple[float, float]]) -> float:
    """``p prod a / (p prod a + (1 - p) prod e)`` for experts ``(a_i, e_i)``: return probabilities from the right
    word and from one confusable wrong word. NaN when both terms are zero (the experts veto every candidate)."""
    _probability("p", p)
    right, wrong = p, 1.0 - p
    for i, (a, e) in enumerate(experts):
        right *= _probability(f"experts[{i}] return probability", a)
        wrong *= _probability(f"experts[{i}] echo", e)
    total = right + wrong
    return right / total if total > 0 else math.nan


def helps(q: float, confusions: int, num_words: int | None = None, errors: str = "cluster") -> bool:
    """Whether one dual step raises the accuracy of a primal with ``0 < p < 1``: ``q > echo``, i.e. with cluster
    errors ``q > 1 / (m + 1)``."""
    return q > echo(q, confusions, num_words or confusions + 1, errors)


# ---------------------------------------------------------------------------------------------- matrices


def clusters(num_words: int, confusions: int) -> torch.Tensor:
    """The cluster id of every word: ``(N,)``, words ``0..m`` in cluster 0, and so on."""
    check_domain(num_words, confusions)
    return torch.arange(num_words) // (confusions + 1)


def channel(
    bijection: torch.Tensor,
    accuracy: float,
    confusions: int,
    errors: str = "cluster",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The row-stochastic ``(N, N)`` matrix of a translator whose right answer for word ``i`` is ``bijection[i]``.

    Mass ``accuracy`` on the right word, the rest uniform over the ``m`` other words of its cluster (``"cluster"``)
    or over all ``N - 1`` other words (``"spread"``). Clusters are :func:`clusters` of the *target* domain."""
    num_words = len(bijection)
    _probability("accuracy", accuracy)
    check_choice("errors", errors, ERRORS)
    cluster = clusters(num_words, confusions)
    right = bijection.long()
    if errors == "cluster":
        mates = (cluster[right][:, None] == cluster[None, :]).to(dtype)
        matrix = mates * (1.0 - accuracy) / confusions
    else:
        matrix = torch.full((num_words, num_words), (1.0 - accuracy) / (num_words - 1), dtype=dtype)
    matrix[torch.arange(num_words), right] = accuracy
    return matrix


def cluster_bijection(num_words: int, confusions: int, generator: torch.Generator) -> torch.Tensor:
    """A random bijection that maps clusters onto clusters (shuffles the clusters, then the words inside each)."""
    check_domain(num_words, confusions)
    size = confusions + 1
    order = torch.randperm(num_words // size, generator=generator)
    inside = torch.stack([torch.randperm(size, generator=generator) for _ in range(num_words // size)])
    return (order[:, None] * size + inside).flatten()


def product_of_experts_matrix(primal: torch.Tensor, *experts: torch.Tensor) -> torch.Tensor:
    """``f'(y | x) ∝ f(y | x) prod_i E_i(x | y)``: ``primal`` ``(N_x, N_y)``, each expert ``(N_y, N_x)`` (maps back)."""
    weights = primal.clone()
    for expert in experts:
        if expert.shape != primal.T.shape:
            raise ValueError(
                f"an expert must map Y back to X, shape {tuple(primal.T.shape)}; got {tuple(expert.shape)}"
            )
        weights = weights * expert.T
    return weights / weights.sum(-1, keepdim=True)


def accuracy_of(matrix: torch.Tensor, bijection: torch.Tensor) -> float:
    """Mean probability a translator puts on the right word."""
    return float(matrix[torch.arange(len(bijection)), bijection.long()].mean())


@dataclass(frozen=True)
class MonteCarlo:
    """A Monte-Carlo estimate of the accuracy after a dual step, from ``accepted`` round trips out of ``trials``."""

    estimate: float
    stderr: float
    accepted: int
    trials: int


def monte_carlo_accuracy(
    primal: torch.Tensor,
    truth: torch.Tensor,
    experts: Sequence[tuple[torch.Tensor, ...]],
    trials: int,
    generator: torch.Generator,
) -> MonteCarlo:
    """Estimate the accuracy of ``f' ∝ f prod E`` by rejection: draw ``x`` uniformly and ``y ~ f(. | x)``; each
    expert, a chain of channels back to ``X`` (the dual ``(g,)``, or the path ``(h, k)`` through ``Z``), sends ``y``
    back; keep the draw if every expert returns ``x``. The kept ``y`` are distributed as ``f'(. | x)``, so the
    fraction right estimates ``p'``; ``stderr`` is its binomial standard error."""
    check_int("trials", trials, 1)
    n = len(truth)
    x = torch.randint(n, (trials,), generator=generator)
    y = torch.multinomial(primal[x], 1, generator=generator).squeeze(1)
    keep = torch.ones(trials, dtype=torch.bool)
    for chain in experts:
        word = y
        for step in chain:
            word = torch.multinomial(step[word], 1, generator=generator).squeeze(1)
        keep &= word == x
    accepted = int(keep.sum())
    if accepted == 0:
        return MonteCarlo(math.nan, math.nan, 0, trials)
    right = float((y[keep] == truth[x[keep]]).double().mean())
    return MonteCarlo(right, math.sqrt(max(right * (1 - right), 1e-12) / accepted), accepted, trials)
