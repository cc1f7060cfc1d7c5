"""The fused vector-quantisation kernel against its PyTorch reference: codes, outputs and gradients, ties, odd sizes."""

from __future__ import annotations

import pytest
import torch

from reprobook.kernels import vector_quantize, vector_quantize_reference
from reprobook.kernels.testing import assert_matches_reference

# (frames, codes, dim): odd sizes that leave partial frame and code tiles (16 x 16), one frame, D = 1, D > 16.
SHAPES = [(37, 21, 5), (1, 2, 1), (50, 64, 64), (17, 70, 3), (0, 3, 4), (16, 16, 16)]


def _inputs(n: int, k: int, d: int, device: torch.device, dtype: torch.dtype = torch.float32):
    z = torch.randn(n, d, device=device, dtype=dtype, requires_grad=True)
    codebook = torch.randn(k, d, device=device, dtype=dtype, requires_grad=True)
    return z, codebook


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape: tuple[int, int, int], device: torch.device) -> None:
    assert_matches_reference("vector_quantize", *_inputs(*shape, device), 0.7)


@pytest.mark.parametrize("shape", SHAPES[:4], ids=str)
def test_matches_reference_in_float64(shape: tuple[int, int, int], device: torch.device) -> None:
    z, codebook = _inputs(*shape, device, torch.float64)
    assert_matches_reference("vector_quantize", z, codebook, 3.0, atol=1e-9, rtol=1e-9)


def test_codes_are_the_nearest(device: torch.device) -> None:
    z, codebook = (t.detach() for t in _inputs(200, 40, 8, device))
    codes, out, err, _ = vector_quantize(z, codebook, backend="triton")
    assert torch.equal(codes, torch.cdist(z, codebook).argmin(-1))
    assert torch.equal(out, codebook[codes])
    assert torch.allclose(err, (z - codebook[codes]).pow(2).sum(-1), atol=1e-4)


def test_ties_pick_the_lowest_index_across_tiles(device: torch.device) -> None:
    """Duplicated codes: both backends pick the first copy, also when the copy sits in a later 16-code tile."""
    base = torch.randn(20, 4, device=device)
    codebook = torch.cat([base, base])  # code k and code k + 20 are equal; 20 + k lands in a later tile
    z = torch.randn(64, 4, device=device)
    triton_codes = vector_quantize(z, codebook, backend="triton")[0]
    assert torch.equal(triton_codes, vector_quantize_reference(z, codebook)[0])
    assert int(triton_codes.max()) < 20


def test_gradient_of_one_output_at_a_time(device: torch.device) -> None:
    """Straight-through only, error only, log-sum-exp only: each backward path alone matches the reference."""
    for pick in range(1, 4):
        grads = []
        for backend in ("triton", "reference"):
            torch.manual_seed(1)
            z, codebook = _inputs(9, 5, 3, device, torch.float64)
            vector_quantize(z, codebook, 0.5, backend=backend)[pick].sum().backward()
            grads.append([torch.zeros_like(t) if t.grad is None else t.grad for t in (z, codebook)])
        for a, b in zip(*grads):
            assert torch.allclose(a, b, atol=1e-9)


def test_bad_input_is_refused(device: torch.device) -> None:
    z = torch.randn(4, 3, device=device)
    with pytest.raises(ValueError, match="at least 2 codes"):
        vector_quantize(z, torch.randn(1, 3, device=device))
    with pytest.raises(ValueError, match="share D"):
        vector_quantize(z, torch.randn(5, 2, device=device))
    with pytest.raises(ValueError, match="temperature"):
        vector_quantize(z, torch.randn(5, 3, device=device), 0.0)
    with pytest.raises(ValueError, match="2-D"):
        vector_quantize(z[None], torch.randn(5, 3, device=device))
