"""The fused Gaussian rate kernel against its PyTorch reference (values and gradients, both quantisation modes, odd
shapes, extreme scales) and the reference against CompressAI's ``GaussianConditional``."""

from __future__ import annotations

import pytest
import torch

from reprobook.kernels import gaussian_rate, gaussian_rate_reference
from reprobook.kernels.testing import assert_matches_reference

SHAPES = [(2, 5, 3, 7), (1, 3000), (3, 1), (1, 2, 33, 33)]


def _inputs(shape: tuple[int, ...], device: torch.device, noise: bool, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    y = (3 * torch.randn(shape, generator=g)).to(device)
    scales = (scale * (0.05 + 2 * torch.rand(shape, generator=g))).to(device)  # some below the 0.11 bound
    means = torch.randn(shape, generator=g).to(device)
    tensors = [y, scales, means]
    if noise:
        tensors.append((torch.rand(shape, generator=g) - 0.5).to(device))
    else:
        means = means.round() + 0.25  # keep y - mean away from .5 ties, where round-half-even and floor(x+.5) differ
        tensors[2] = means
    return tuple(t.requires_grad_() for t in tensors)


@pytest.mark.parametrize("noise", [True, False], ids=["noise", "round"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape: tuple[int, ...], noise: bool, device: torch.device) -> None:
    assert_matches_reference("gaussian_rate", *_inputs(shape, device, noise), rtol=1e-4)


@pytest.mark.parametrize("scale", [1e-3, 1e3], ids=["tiny-scales", "huge-scales"])
def test_extreme_scales(scale: float, device: torch.device) -> None:
    """Scales far below the 0.11 bound (likelihoods hit the 1e-9 bound) and far above it (tiny rates)."""
    assert_matches_reference("gaussian_rate", *_inputs((2, 4, 5, 5), device, True, scale), rtol=1e-4, atol=1e-3)


def test_empty_batch_and_float64(device: torch.device) -> None:
    empty = [torch.zeros(0, 3, device=device) for _ in range(3)]
    assert gaussian_rate(*empty, backend="triton").shape == (0,)
    inputs = [t.detach().double().requires_grad_() for t in _inputs((2, 3, 4), device, True)]
    assert_matches_reference("gaussian_rate", *inputs, atol=1e-6, rtol=1e-6)  # the erfc fit: 1.2e-7 relative


def test_reference_matches_compressai() -> None:
    """Values and the gradient wrt the scales equal CompressAI's GaussianConditional (training mode, same noise)."""
    GaussianConditional = pytest.importorskip("compressai.entropy_models").GaussianConditional

    y, scales, means, noise = (t.detach() for t in _inputs((2, 4, 6, 6), torch.device("cpu"), True))
    conditional = GaussianConditional(None)
    s1, s2 = scales.clone().requires_grad_(), scales.clone().requires_grad_()
    _, likelihood = conditional(y + noise, s1, means, training=False)  # "dequantize" of y + noise would round it,
    expected = None  # so compute CompressAI's likelihood on y_hat = y + noise directly:
    likelihood = conditional.likelihood_lower_bound(conditional._likelihood(y + noise, s1, means))
    expected = -torch.log2(likelihood).flatten(1).sum(1)
    got = gaussian_rate_reference(y, s2, means, noise)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    (ge,) = torch.autograd.grad(expected.sum(), s1)
    (gg,) = torch.autograd.grad(got.sum(), s2)
    torch.testing.assert_close(gg, ge, rtol=1e-4, atol=1e-5)


def test_rounding_mode_prices_integer_offsets() -> None:
    """With noise=None, y_hat = round(y - mean) + mean: a shift of y that keeps the rounding changes nothing."""
    y = torch.tensor([[2.1, -0.9, 0.3]])
    means, scales = torch.zeros(1, 3), torch.ones(1, 3)
    a = gaussian_rate_reference(y, scales, means)
    b = gaussian_rate_reference(y + 0.15, scales, means)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scales": torch.ones(2, 4)}, ValueError, "one shape"),
        ({"y": torch.ones(2, 3, dtype=torch.long)}, TypeError, "y"),
        ({"scale_bound": 0.0}, ValueError, "scale_bound"),
        ({"likelihood_bound": -1.0}, ValueError, "likelihood_bound"),
    ],
)
def test_bad_input(kwargs: dict, error: type, match: str) -> None:
    args = {"y": torch.ones(2, 3), "scales": torch.ones(2, 3), "means": torch.zeros(2, 3)} | kwargs
    with pytest.raises(error, match=match):
        gaussian_rate_reference(**args)
