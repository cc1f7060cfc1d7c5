"""The lexicon translators and the dual losses: exact sums, REINFORCE's unbiasedness, the inverse-permutation
fixed points, shapes and bad input."""

from __future__ import annotations

import itertools

import pytest
import torch

from reprobook.dual import (
    DualConfig,
    TableTranslator,
    build_model,
    dual_reconstruction,
    dual_reinforce,
    load_data,
    loop_reconstruction,
    objective,
    supervised_loss,
)


def _tables(sizes: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pairs = zip(sizes, sizes[1:] + sizes[:1])
    return [torch.randn(a, b, generator=generator, dtype=torch.float64).log_softmax(-1) for a, b in pairs]


def test_dual_reconstruction_is_the_explicit_sum() -> None:
    f, g = _tables((4, 5))
    explicit = torch.tensor([sum(f[x, y].exp() * g[y, x] for y in range(5)) for x in range(4)], dtype=torch.float64)
    torch.testing.assert_close(dual_reconstruction(f, g), explicit)


def test_loop_reconstruction_is_the_explicit_sum() -> None:
    f, h, k = _tables((3, 4, 5))
    explicit = torch.zeros(3, dtype=torch.float64)
    for x, y, z in itertools.product(range(3), range(4), range(5)):
        explicit[x] += f[x, y].exp() * h[y, z].exp() * k[z, x]
    torch.testing.assert_close(loop_reconstruction(f, h, k), explicit)


@pytest.mark.parametrize("baseline", [True, False])
def test_reinforce_gradient_is_unbiased(baseline: bool) -> None:
    """The sampled surrogate's gradient, averaged over many draws, equals minus the exact gradient."""
    generator = torch.Generator().manual_seed(1)
    f_logits = torch.randn(3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    g_logits = torch.randn(4, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    exact = torch.autograd.grad(
        -dual_reconstruction(f_logits.log_softmax(-1), g_logits.log_softmax(-1)).mean(), [f_logits, g_logits]
    )
    draws = 4_000
    surrogate, rewards = dual_reinforce(f_logits.log_softmax(-1), g_logits.log_softmax(-1), 20 * draws, generator,
                                        baseline)  # fmt: skip
    sampled = torch.autograd.grad(surrogate, [f_logits, g_logits])
    assert rewards.shape == (3, 20 * draws)
    for estimate, truth in zip(sampled, exact):
        torch.testing.assert_close(estimate, truth, atol=0.01, rtol=0.0)


def test_the_baseline_cuts_the_variance() -> None:
    generator = torch.Generator().manual_seed(2)
    f = torch.randn(5, 6, generator=generator, dtype=torch.float64).log_softmax(-1)
    g = torch.randn(6, 5, generator=generator, dtype=torch.float64).log_softmax(-1)
    spread = {}
    for baseline in (True, False):
        grads = []
        for _ in range(200):
            logits = f.clone().requires_grad_()
            surrogate, _ = dual_reinforce(logits.log_softmax(-1), g, 4, generator, baseline)
            grads.append(torch.autograd.grad(surrogate, logits)[0])
        spread[baseline] = torch.stack(grads).var(0).sum().item()
    assert spread[True] < 0.5 * spread[False]


def test_any_pair_of_inverse_permutations_is_a_fixed_point() -> None:
    """Sharp tables of a permutation and its inverse reconstruct every word: the dual loss is at its optimum (0)
    with zero gradient, whether the permutation is the right translation or not."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        perm = torch.randperm(7, generator=generator)
        forward = TableTranslator(30.0 * torch.eye(7, dtype=torch.float64)[perm])
        backward = TableTranslator(30.0 * torch.eye(7, dtype=torch.float64)[torch.argsort(perm)])
        reconstruction = dual_reconstruction(forward(), backward()).mean()
        reconstruction.backward()
        assert reconstruction.item() > -1e-9
        assert forward.logits.grad.abs().max() < 1e-9 and backward.logits.grad.abs().max() < 1e-9


def test_translators_shapes_and_objective_terms() -> None:
    config = DualConfig(num_concepts=40, seeds_per_pair=5, num_steps=4, warmup_steps=2, method="multistep")
    data = load_data(config)
    model = build_model(config, data)
    tables = model.tables(data)
    assert len(tables) == 6 and all(t.shape == (40, 40) for t in tables.values())
    assert torch.allclose(tables["X", "Y"].exp().sum(-1), torch.ones(40))
    terms = objective(model, data, "multistep")
    assert set(terms) == {"supervised", "dual", "loop", "loss"}
    # Zero maps send every source word to the origin: f(y | x) = prior_B(y) ∝ exp(-||v_y||^2), whatever x. Then
    # R_dual(x) = R_loop(x) = log prior_A(x) (the table sums to one): every term has a closed form.
    prior = {lang: (-data.words(lang).square().sum(-1)).log_softmax(0) for lang in data.languages}
    for (_, b), table in tables.items():
        torch.testing.assert_close(table, prior[b].expand(40, 40))
    sup = sum(-prior[b][data.seed_pairs(a, b)].mean() for a, b in model.directions)
    entropy = {lang: -prior[lang].mean() for lang in data.languages}  # -mean_x log prior(x)
    torch.testing.assert_close(terms["supervised"], torch.as_tensor(sup))
    torch.testing.assert_close(terms["dual"], 2 * sum(entropy.values()))  # each language is the source twice
    torch.testing.assert_close(terms["loop"], 2 * sum(entropy.values()))  # and starts two of the six loops
    torch.testing.assert_close(terms["loss"], terms["supervised"] + terms["dual"] + terms["loop"])
    assert terms["dual"] > 6 * torch.log(torch.tensor(40.0))  # a non-uniform prior reconstructs worse than chance


def test_bad_input() -> None:
    config = DualConfig(num_concepts=20, seeds_per_pair=3)
    data = load_data(config)
    model = build_model(config, data)
    with pytest.raises(ValueError, match="language='Q' is not valid"):
        model.log_probs(data, "X", "Q")
    with pytest.raises(ValueError, match="no translator X -> X"):
        model.translator("X", "X")
    with pytest.raises(ValueError, match="seed dictionary is empty"):
        supervised_loss(torch.zeros(3, 3), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="do not chain"):
        loop_reconstruction(*_tables((3, 4, 5))[:2], torch.zeros(4, 3))
    with pytest.raises(ValueError, match="num_samples"):
        dual_reinforce(*_tables((3, 4)), num_samples=1)
