"""The fused candidate-scoring kernel against its PyTorch reference: values, gradients, repeats and padding."""

from __future__ import annotations

import pytest
import torch

from reprobook.kernels import candidate_cross_entropy
from reprobook.kernels.testing import assert_matches_reference


def _problem(n: int, d: int, v: int, k: int, device: torch.device, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=generator) / d**0.25
    weight = torch.randn(v, d, generator=generator) / d**0.25
    bias = torch.randn(v, generator=generator) * 0.1
    candidates = torch.randint(v, (n, k), generator=generator)
    target = torch.randint(k, (n,), generator=generator)
    return (
        hidden.to(device).requires_grad_(),
        weight.to(device).requires_grad_(),
        bias.to(device).requires_grad_(),
        candidates.to(device),
        target.to(device),
    )


# K = 2 (the smallest choice) and 10 (the paper's); D = 5 and 24 (not powers of 2); N = 1 and 37 (not a multiple of
# the 32-token block); V = 3 (so nearly every candidate list repeats words).
@pytest.mark.parametrize("n, d, v, k", [(1, 5, 7, 2), (37, 24, 50, 10), (64, 16, 3, 5), (20, 200, 40, 4)], ids=str)
def test_matches_reference(n: int, d: int, v: int, k: int, device: torch.device) -> None:
    assert_matches_reference("candidate_scoring", *_problem(n, d, v, k, device))


def test_repeated_correct_word_uses_every_slot_holding_it(device: torch.device) -> None:
    hidden, weight, bias, candidates, target = _problem(6, 8, 20, 4, device)
    candidates[:, 1] = candidates[:, 3]  # the correct word (slot 1) sits in slot 3 too
    target[:] = 1
    assert_matches_reference("candidate_scoring", hidden, weight, bias, candidates, target)
    loss = candidate_cross_entropy(hidden, weight, bias, candidates, target, backend="triton")
    z = torch.einsum("nd,nkd->nk", hidden.detach(), weight.detach()[candidates]) + bias.detach()[candidates]
    p = z.softmax(-1)
    right = candidates == candidates[:, 1:2]  # slots 1 and 3, and any other that drew the word
    expected = -(p * right).sum(-1).log()  # the probability of the word, not of one slot
    torch.testing.assert_close(loss.detach(), expected, atol=1e-5, rtol=1e-5)
    all_same = candidates.clone()
    all_same[:] = 5
    zero = candidate_cross_entropy(hidden, weight, bias, all_same, target, backend="triton")
    torch.testing.assert_close(zero.detach(), torch.zeros(6, device=device), atol=1e-6, rtol=0)  # every slot is right


def test_padding_gives_zero_loss_and_no_gradient(device: torch.device) -> None:
    hidden, weight, bias, candidates, target = _problem(40, 16, 30, 6, device)
    target[::3] = -1
    assert_matches_reference("candidate_scoring", hidden, weight, bias, candidates, target)
    loss = candidate_cross_entropy(hidden, weight, bias, candidates, target, backend="triton")
    assert (loss[::3] == 0).all()
    loss.sum().backward()
    assert (hidden.grad[::3] == 0).all() and hidden.grad[1].abs().sum() > 0
    everything = torch.full_like(target, -1)
    out = candidate_cross_entropy(hidden, weight, bias, candidates, everything, backend="triton")
    assert torch.equal(out.detach(), torch.zeros_like(out))


def test_leading_dimensions_and_plain_cross_entropy(device: torch.device) -> None:
    hidden, weight, bias, candidates, target = _problem(2 * 9, 12, 500, 5, device, seed=2)
    batch = (hidden.detach().view(2, 9, 12).requires_grad_(), weight, bias, candidates.view(2, 9, 5), target.view(2, 9))
    assert_matches_reference("candidate_scoring", *batch)
    z = torch.einsum("nd,nkd->nk", hidden.detach(), weight.detach()[candidates]) + bias.detach()[candidates]
    unique = (candidates.sort(-1).values.diff(dim=-1) != 0).all(-1)  # rows without repeats: the usual CE
    loss = candidate_cross_entropy(hidden, weight, bias, candidates, target, backend="triton").detach()
    expected = torch.nn.functional.cross_entropy(z, target, reduction="none")
    torch.testing.assert_close(loss[unique], expected[unique], atol=1e-5, rtol=1e-5)


def test_empty_batch(device: torch.device) -> None:
    weight = torch.randn(10, 8, device=device, requires_grad=True)
    bias = torch.zeros(10, device=device, requires_grad=True)
    hidden = torch.zeros(0, 8, device=device, requires_grad=True)
    candidates, target = (
        torch.zeros(0, 3, dtype=torch.long, device=device),
        torch.zeros(0, dtype=torch.long, device=device),
    )
    loss = candidate_cross_entropy(hidden, weight, bias, candidates, target, backend="triton")
    assert loss.shape == (0,)
    loss.sum().backward()
    assert weight.grad is not None and torch.equal(weight.grad, torch.zeros_like(weight))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"candidates": torch.zeros(4, 1, dtype=torch.long)}, "K >= 2"),
        ({"target": torch.full((4,), 7)}, "target slots"),
        ({"candidates": torch.full((4, 3), 99)}, "outside the vocabulary"),
        ({"bias": torch.zeros(5)}, "bias"),
    ],
)
def test_bad_input(change: dict, message: str) -> None:
    args = {
        "hidden": torch.randn(4, 8),
        "weight": torch.randn(10, 8),
        "bias": torch.zeros(10),
        "candidates": torch.zeros(4, 3, dtype=torch.long),
        "target": torch.zeros(4, dtype=torch.long),
    }
    args.update(change)
    with pytest.raises(ValueError, match=message):
        candidate_cross_entropy(**args, backend="reference")
