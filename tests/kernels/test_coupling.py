"""The fused coupling kernel against its PyTorch reference: values and gradients, both directions, odd shapes."""

from __future__ import annotations

import pytest
import torch

from reprobook.kernels import affine_coupling, affine_coupling_reference
from reprobook.kernels.testing import assert_matches_reference
from reprobook.nn.invertible import AffineCoupling, DenseSubnet

# (2, 9, 5, 7) is the z branch of a x2 IRN block at odd spatial size; 3000 elements span three 1024-blocks.
SHAPES = [(2, 9, 5, 7), (1, 45, 3, 3), (3000,), (1,), (0, 9, 4, 4), (2, 1, 1, 1)]


def _inputs(
    shape: tuple[int, ...], device: torch.device, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, ...]:
    x, g = (torch.randn(shape, device=device, dtype=dtype) for _ in range(2))
    h = 3 * torch.randn(shape, device=device, dtype=dtype)  # wide enough to reach both ends of the clamp
    return tuple(t.requires_grad_() for t in (x, h, g))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape: tuple[int, ...], reverse: bool, device: torch.device) -> None:
    assert_matches_reference("coupling", *_inputs(shape, device), reverse=reverse)


@pytest.mark.parametrize("clamp", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_matches_reference_for_other_clamps(clamp: float, reverse: bool, device: torch.device) -> None:
    assert_matches_reference("coupling", *_inputs((2, 3, 4, 5), device), clamp=clamp, reverse=reverse)


def test_gradient_wrt_one_input_only(device: torch.device) -> None:
    """Inputs that do not require grad get none; the others still match."""
    x, h, g = _inputs((2, 9, 3, 3), device)
    assert_matches_reference("coupling", x, h.detach(), g.detach(), reverse=True)
    assert_matches_reference("coupling", x.detach(), h, g.detach())


def test_non_contiguous_inputs(device: torch.device) -> None:
    """Channel slices of a wider map, as the coupling block makes them, are not contiguous."""
    wide = [torch.randn(2, 12, 6, 5, device=device, requires_grad=True) for _ in range(3)]
    outputs, grads = [], []
    for backend in ("triton", "reference"):
        x, h, g = (w[:, 3:] for w in wide)
        assert not x.is_contiguous()
        out = affine_coupling(x, h, g, reverse=True, backend=backend)
        outputs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), wide))
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # numpy, inside the interpreter: exp(-h) = inf
def test_round_trip_is_exact_and_the_scale_is_clamped(device: torch.device) -> None:
    x = (0.5 + torch.rand(4, 9, 7, 7, device=device)) * torch.randn(4, 9, 7, 7, device=device).sign()  # |x| >= 0.5
    h = 100 * torch.randn(4, 9, 7, 7, device=device)  # saturates the sigmoid: s = +-clamp
    g = torch.randn(4, 9, 7, 7, device=device)
    y = affine_coupling(x, h, g, 1.0, backend="triton")
    torch.testing.assert_close(affine_coupling(y, h, g, 1.0, reverse=True, backend="triton"), x, atol=1e-5, rtol=1e-5)
    ratio = ((y - g) / x).cpu()  # exp(s), s in [-1, 1]; the huge |h| reaches both ends
    assert ratio.min() >= torch.exp(torch.tensor(-1.0)) - 1e-5 and ratio.max() <= torch.e + 1e-5
    assert ratio.min() < 0.37 and ratio.max() > 2.71


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float16, 2e-3), (torch.bfloat16, 2e-2)], ids=str)
def test_dtypes(dtype: torch.dtype, tol: float, device: torch.device) -> None:
    inputs = _inputs((2, 9, 5, 3), device, dtype)
    assert_matches_reference("coupling", *inputs, atol=tol, rtol=tol)
    assert affine_coupling(*inputs, backend="triton").dtype == dtype


def test_coupling_block_uses_the_kernel_and_matches_the_reference(
    device: torch.device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole InvBlock (subnets included), forward and inverse, Triton vs reference: same outputs and grads."""
    torch.manual_seed(0)
    block = AffineCoupling(12, 3, lambda i, o: DenseSubnet(i, o, growth=4, depth=2)).to(device)
    for p in block.parameters():  # move away from the identity start
        p.data.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 12, 5, 3, device=device)
    outputs, grads = {}, {}
    for backend in ("triton", "reference"):
        monkeypatch.setenv("REPROBOOK_KERNELS", backend)
        block.zero_grad()
        y = block(x)
        back = block(y, reverse=True)
        (y.square().sum() + back.sum()).backward()
        outputs[backend] = (y.detach(), back.detach())
        grads[backend] = [p.grad.clone() for p in block.parameters()]
    for a, b in zip(outputs["triton"], outputs["reference"]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outputs["triton"][1], x, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads["triton"], grads["reference"]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_bad_inputs_name_the_argument(device: torch.device) -> None:
    x = torch.randn(2, 9, 4, 4, device=device)
    with pytest.raises(ValueError, match=r"same shape.*h: \(2, 9, 4, 5\)"):
        affine_coupling(x, torch.randn(2, 9, 4, 5, device=device), x, backend="triton")
    with pytest.raises(ValueError, match="clamp must be a positive number"):
        affine_coupling(x, x, x, clamp=0.0, backend="triton")
    with pytest.raises(TypeError, match="dtype"):
        affine_coupling_reference(x.long(), x, x)


def test_benchmark_inputs_have_the_documented_shape(device: torch.device) -> None:
    from reprobook.kernels import get

    spec = get("coupling")
    x, h, g = spec.make_inputs(8, device, torch.float32)
    assert x.shape == h.shape == g.shape == (16, 9, 8, 8)
    torch.testing.assert_close(spec(x, h, g, backend="triton"), spec(x, h, g, backend="reference"))
