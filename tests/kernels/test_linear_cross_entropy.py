"""The fused projection + cross-entropy kernel against its PyTorch reference: values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reprobook.kernels import linear_cross_entropy
from reprobook.kernels.testing import assert_matches_reference


def _problem(n: int, d: int, v: int, device: torch.device, ignore_every: int = 0, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=generator) / d**0.25
    weight = torch.randn(v, d, generator=generator) / d**0.25
    target = torch.randint(v, (n,), generator=generator)
    if ignore_every:
        target[::ignore_every] = -100
    return hidden.to(device).requires_grad_(), weight.to(device).requires_grad_(), target.to(device)


# V = 1 (a one-word vocabulary), 97 and 130 (not multiples of the 64-word tile, more than one tile), D = 5 and
# 24 (below and not a power of 2), 200 (the 16-token blocks), N = 1 and 37 (not a multiple of the token block).
@pytest.mark.parametrize("n, d, v", [(1, 5, 1), (37, 24, 97), (33, 16, 130), (20, 200, 70)], ids=str)
def test_matches_reference(n: int, d: int, v: int, device: torch.device) -> None:
    assert_matches_reference("linear_cross_entropy", *_problem(n, d, v, device))


def test_ignore_index_gives_zero_loss_and_no_gradient(device: torch.device) -> None:
    hidden, weight, target = _problem(40, 16, 50, device, ignore_every=3)
    assert_matches_reference("linear_cross_entropy", hidden, weight, target)
    loss = linear_cross_entropy(hidden, weight, target, backend="triton")
    assert (loss[::3] == 0).all()
    loss.sum().backward()
    assert (hidden.grad[::3] == 0).all() and hidden.grad[1].abs().sum() > 0


def test_custom_ignore_index_and_all_ignored(device: torch.device) -> None:
    hidden, weight, target = _problem(9, 8, 12, device)
    target[:4] = 0  # padding id 0, as the text vocabularies use
    assert_matches_reference("linear_cross_entropy", hidden, weight, target, ignore_index=0)
    everything = torch.full_like(target, 7)
    loss = linear_cross_entropy(hidden, weight, everything, ignore_index=7, backend="triton")
    assert torch.equal(loss, torch.zeros_like(loss))


def test_leading_dimensions_and_strided_hidden(device: torch.device) -> None:
    hidden, weight, target = _problem(2 * 3 * 5, 16, 33, device)
    batch = hidden.detach().view(2, 3, 5, 16).requires_grad_()
    assert_matches_reference("linear_cross_entropy", batch, weight, target.view(2, 3, 5))
    wide = torch.randn(30, 40, device=device)
    wide[:, 4:20] = hidden.detach()
    assert_matches_reference("linear_cross_entropy", wide[:, 4:20], weight, target, check_grad=False)


def test_equals_cross_entropy_of_the_logits_and_a_sum_over_samples(device: torch.device) -> None:
    """The per-token losses of K samples summed per sentence are -log p(sentence | sample), as a decoder's."""
    hidden, weight, target = _problem(4 * 6, 16, 21, device, seed=3)
    loss = linear_cross_entropy(hidden, weight, target, backend="triton").view(4, 6).sum(1)
    logits = hidden.detach() @ weight.detach().T
    expected = F.cross_entropy(logits, target, reduction="none").view(4, 6).sum(1)
    torch.testing.assert_close(loss, expected, atol=1e-4, rtol=1e-4)


def test_large_logits_stay_finite(device: torch.device) -> None:
    hidden, weight, target = _problem(8, 16, 90, device)
    big = (hidden.detach() * 300).requires_grad_()
    assert_matches_reference("linear_cross_entropy", big, weight, target, atol=1e-2, rtol=1e-4)
    assert torch.isfinite(linear_cross_entropy(big, weight, target, backend="triton")).all()


def test_empty_batch(device: torch.device) -> None:
    weight = torch.randn(10, 8, device=device, requires_grad=True)
    hidden = torch.zeros(0, 8, device=device, requires_grad=True)
    loss = linear_cross_entropy(hidden, weight, torch.zeros(0, dtype=torch.long, device=device), backend="triton")
    assert loss.shape == (0,)
    loss.sum().backward()
    assert weight.grad is not None and torch.equal(weight.grad, torch.zeros_like(weight))


def test_only_the_weight_needs_grad(device: torch.device) -> None:
    hidden, weight, target = _problem(17, 12, 40, device)
    assert_matches_reference("linear_cross_entropy", hidden.detach(), weight, target)


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_bad_inputs_raise_clear_errors(backend: str, device: torch.device) -> None:
    hidden, weight, target = _problem(6, 8, 10, device)
    with pytest.raises(ValueError, match="share D"):
        linear_cross_entropy(hidden[:, :4], weight, target, backend=backend)
    with pytest.raises(ValueError, match="target must be a long tensor"):
        linear_cross_entropy(hidden, weight, target.int(), backend=backend)
    with pytest.raises(ValueError, match="target must be a long tensor"):
        linear_cross_entropy(hidden, weight, target[:3], backend=backend)
    bad = target.clone()
    bad[0] = 10
    with pytest.raises(ValueError, match="word id 10, outside the vocabulary"):
        linear_cross_entropy(hidden, weight, bad, backend=backend)
    with pytest.raises(TypeError, match="hidden must be a float tensor"):
        linear_cross_entropy(hidden.long(), weight, target, backend=backend)
    with pytest.raises(TypeError, match="share a dtype"):
        linear_cross_entropy(hidden.double().float().half(), weight, target, backend=backend)
