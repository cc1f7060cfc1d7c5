"""The closed forms of the theory lab against exhaustive enumeration and Monte Carlo, and their bad inputs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from reprobook.dual import theory


def _domain(num_words: int, confusions: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    xy = theory.cluster_bijection(num_words, confusions, generator)  # X -> Y
    yz = theory.cluster_bijection(num_words, confusions, generator)  # Y -> Z
    yx = torch.argsort(xy)
    zx = yx[torch.argsort(yz)]  # Z -> Y -> X
    return xy, yx, yz, zx, generator


def _enumerate(primal: torch.Tensor, truth: torch.Tensor, *experts: torch.Tensor) -> float:
    """Accuracy of f' ∝ f prod E by summing over every (x, y) by hand, one word at a time."""
    n = len(truth)
    total = 0.0
    for x in range(n):
        weights = [float(primal[x, y]) * math.prod(float(e[y, x]) for e in experts) for y in range(n)]
        total += weights[int(truth[x])] / sum(weights)
    return total / n


@pytest.mark.parametrize("num_words, confusions", [(4, 1), (6, 2), (6, 5), (8, 3)])
@pytest.mark.parametrize("p, q", [(0.3, 0.6), (0.7, 0.2), (0.5, 0.5)])
def test_dual_step_equals_enumeration(num_words: int, confusions: int, p: float, q: float) -> None:
    xy, yx, *_ = _domain(num_words, confusions)
    for errors in theory.ERRORS:
        f, g = theory.channel(xy, p, confusions), theory.channel(yx, q, confusions, errors)
        expected = _enumerate(f, xy, g)
        assert theory.dual_step(p, q, confusions, num_words, errors) == pytest.approx(expected, abs=1e-12)
        assert theory.accuracy_of(theory.product_of_experts_matrix(f, g), xy) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("errors", theory.ERRORS)
def test_multistep_equals_enumeration(errors: str) -> None:
    num_words, confusions = 6, 2
    xy, yx, yz, zx, _ = _domain(num_words, confusions, seed=3)
    for p, q, q1, q2 in itertools.product((0.4, 0.8), (0.3, 0.6), (0.5, 0.9), (0.2, 0.7)):
        f, g = theory.channel(xy, p, confusions), theory.channel(yx, q, confusions, errors)
        path = theory.channel(yz, q1, confusions, errors) @ theory.channel(zx, q2, confusions, errors)
        expected = _enumerate(f, xy, g, path)
        assert theory.multistep_step(p, q, q1, q2, confusions, num_words, errors, errors) == pytest.approx(expected)
        right = float(path[torch.arange(num_words), yx].mean())
        assert theory.path_accuracy(q1, q2, confusions, num_words, errors) == pytest.approx(right)


def test_helps_exactly_above_chance_within_the_confusion_set() -> None:
    for m in (1, 2, 4, 9):
        chance = 1 / (m + 1)
        for q in (chance - 0.05, chance + 0.05):
            assert (theory.dual_step(0.5, q, m) > 0.5) == (q > chance) == theory.helps(q, m)
        assert theory.dual_step(0.5, chance, m) == pytest.approx(0.5)
    # spread errors: the bar is 1 / N, so a dual far below 1 / (m + 1) still helps
    assert theory.dual_step(0.5, 0.2, 1, 20, "spread") > 0.5 > theory.dual_step(0.5, 0.2, 1)


def test_dual_step_is_the_mirror_step_of_the_reconstruction() -> None:
    """f' ∝ f g maximises E_{f'}[log g] - KL(f' || f): no other row does better."""
    xy, yx, *_ = _domain(6, 2)
    f, g = theory.channel(xy, 0.5, 2, "spread"), theory.channel(yx, 0.7, 2, "spread")  # no zeros: logs stay finite
    best = theory.product_of_experts_matrix(f, g)

    def objective(rows: torch.Tensor) -> torch.Tensor:
        return (rows * (g.T.log() - (rows / f).log())).sum(-1)

    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        other = (best.log() + 0.3 * torch.randn(best.shape, generator=generator, dtype=best.dtype)).softmax(-1)
        assert (objective(other) <= objective(best) + 1e-12).all()


def test_monte_carlo_within_its_error() -> None:
    xy, yx, yz, zx, generator = _domain(30, 2)
    f, g = theory.channel(xy, 0.4, 2), theory.channel(yx, 0.6, 2)
    h, k = theory.channel(yz, 0.8, 2, "spread"), theory.channel(zx, 0.7, 2, "spread")
    mc = theory.monte_carlo_accuracy(f, xy, [(g,)], 40_000, generator)
    assert abs(mc.estimate - theory.dual_step(0.4, 0.6, 2)) < 4 * mc.stderr
    mc = theory.monte_carlo_accuracy(f, xy, [(g,), (h, k)], 60_000, generator)
    exact = theory.accuracy_of(theory.product_of_experts_matrix(f, g, h @ k), xy)
    assert abs(mc.estimate - exact) < 4 * mc.stderr and mc.accepted < mc.trials


def test_degenerate_product_is_nan() -> None:
    assert math.isnan(theory.dual_step(0.0, 1.0, 2))
    assert theory.dual_step(1.0, 0.3, 2) == 1.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: theory.dual_step(1.2, 0.5, 2), "p=1.2 is out of range"),
        (lambda: theory.dual_step(0.5, -0.1, 2), "q=-0.1 is out of range"),
        (lambda: theory.path_accuracy(0.5, float("nan"), 2), "q2 must be a finite number"),
        (lambda: theory.dual_step(0.5, 0.5, 0), "confusions=0 is out of range"),
        (lambda: theory.echo(0.5, 6, 6), "larger than the domain"),
        (lambda: theory.echo(0.5, 2, 7), "multiple of the cluster size"),
        (lambda: theory.echo(0.5, 2, 6, "aligned"), "errors='aligned' is not valid"),
        (lambda: theory.channel(torch.arange(6), 0.5, 6), "larger than the domain"),
    ],
)
def test_bad_input_is_refused_by_name(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
