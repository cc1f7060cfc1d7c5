"""The fused softmax kernel against its PyTorch reference: values and gradients, random and edge-case shapes."""

from __future__ import annotations

import pytest
import torch

from reprobook.kernels import softmax
from reprobook.kernels.testing import assert_matches_reference

# 5x5000 is longer than one 4096-column chunk, so the kernels' loops run twice.
SHAPES = [(1, 1), (3, 7), (5, 129), (0, 8), (4, 0), (2, 3, 5), (1, 2, 1, 64), (2, 5000)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference_without_mask(shape: tuple[int, ...], device: torch.device) -> None:
    x = torch.randn(shape, device=device, requires_grad=True)
    assert_matches_reference("softmax", x)


@pytest.mark.parametrize("mask_shape", [(2, 3, 9), (9,), (3, 9), (2, 1, 9), (2, 3, 1)], ids=str)
def test_matches_reference_with_broadcast_mask(mask_shape: tuple[int, ...], device: torch.device) -> None:
    x = torch.randn(2, 3, 9, device=device, requires_grad=True)
    mask = torch.randn(mask_shape, device=device, requires_grad=True)
    assert_matches_reference("softmax", x, mask)


def test_large_and_masked_entries(device: torch.device) -> None:
    x = 1000 * torch.randn(4, 33, device=device)  # exp overflows unless the row max is subtracted
    x[0, 5] = -1e30
    x[1] -= 1e4
    mask = torch.zeros(4, 33, device=device)
    mask[2, :32] = float("-inf")  # one entry left
    mask[3, ::2] = float("-inf")
    x.requires_grad_()
    assert_matches_reference("softmax", x, mask)

    y = softmax(x, mask, backend="triton")
    assert y[2, 32] == 1
    assert (y[3, ::2] == 0).all()
    torch.testing.assert_close(y.sum(-1), torch.ones(4, device=device))


def test_long_row_whose_first_chunk_is_masked(device: torch.device) -> None:
    """Rows longer than one 4096-column chunk, with the whole first chunk at -inf (left padding)."""
    x = torch.randn(2, 5000, device=device, requires_grad=True)
    mask = torch.zeros(2, 5000, device=device)
    mask[0, :4500] = float("-inf")
    assert_matches_reference("softmax", x, mask)


def test_minus_inf_in_input_has_zero_probability_and_gradient(device: torch.device) -> None:
    x = torch.randn(3, 10, device=device)
    x[:, :4] = float("-inf")
    x.requires_grad_()
    assert_matches_reference("softmax", x)
    softmax(x, backend="triton").pow(2).sum().backward()
    assert x.grad is not None and (x.grad[:, :4] == 0).all()


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # numpy, inside the interpreter
def test_fully_masked_row_is_nan_like_torch(device: torch.device) -> None:
    x = torch.randn(3, 6, device=device)
    mask = torch.zeros(3, 6, device=device)
    mask[1] = float("-inf")
    y = softmax(x, mask, backend="triton")
    assert y[1].isnan().all() and torch.softmax(x + mask, -1)[1].isnan().all()
    assert y[[0, 2]].isfinite().all()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float16, 2e-3), (torch.bfloat16, 1e-2)], ids=str)
def test_dtypes(dtype: torch.dtype, tol: float, device: torch.device) -> None:
    x = torch.randn(3, 70, device=device, dtype=dtype, requires_grad=True)
    mask = torch.randn(70, device=device, dtype=torch.float32)
    assert_matches_reference("softmax", x, mask, atol=tol, rtol=tol)
    assert softmax(x, backend="triton").dtype == dtype


def test_backward_passes_gradcheck(device: torch.device) -> None:
    """Finite differences check the Triton backward independently of the reference."""
    x = torch.randn(2, 5, device=device, dtype=torch.float64, requires_grad=True)
    mask = torch.randn(5, device=device, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, mask: softmax(x, mask, backend="triton"), (x, mask))


def test_strided_inputs_and_broadcast_upstream_gradient(device: torch.device) -> None:
    transposed = torch.randn(7, 5, device=device).t().requires_grad_()
    every_other_column = torch.randn(3, 20, device=device)[:, ::2].requires_grad_()
    for x in (transposed, every_other_column):
        assert_matches_reference("softmax", x)
    weights = torch.randn(10, device=device)  # upstream gradient expands it: row stride 0
    grads = []
    for backend in ("triton", "reference"):
        x = every_other_column.detach().requires_grad_()
        (softmax(x, backend=backend) * weights).sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_bad_inputs_raise_clear_errors(backend: str, device: torch.device) -> None:
    x = torch.randn(3, 5, device=device)
    with pytest.raises(ValueError, match=r"last dimension.*movedim"):
        softmax(x, dim=0, backend=backend)
    with pytest.raises(TypeError, match="dtype"):
        softmax(torch.ones(3, 5, dtype=torch.long, device=device), backend=backend)
    with pytest.raises(ValueError, match="0-d"):
        softmax(torch.tensor(1.0, device=device), backend=backend)
    with pytest.raises(ValueError, match="does not broadcast"):
        softmax(x, torch.zeros(4, device=device), backend=backend)
    with pytest.raises(TypeError, match="additive"):
        softmax(x, torch.ones(5, dtype=torch.bool, device=device), backend=backend)
    assert softmax(x, dim=1, backend=backend).shape == (3, 5)
