"""The fused multi-branch attention kernel against its PyTorch reference: values, gradients, masks, odd lengths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from reprobook.kernels import branch_attention
from reprobook.kernels.testing import assert_matches_reference

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered", "ignore:divide by zero")  # padded rows


def _inputs(b: int, n: int, m: int, t_q: int, t_k: int, d: int, d_out: int, device: torch.device):
    q = torch.randn(b, n, m, t_q, d, device=device, requires_grad=True)
    k = torch.randn(b, n, m, t_k, d, device=device, requires_grad=True)
    v = torch.randn(b, n, m, t_k, d, device=device, requires_grad=True)
    w = (torch.randn(n, d_out, m * d, device=device) / (m * d) ** 0.5).requires_grad_()
    return q, k, v, w


@pytest.mark.parametrize(
    "shape",
    [
        (2, 2, 2, 5, 7, 8, 16),
        (1, 3, 4, 1, 1, 4, 8),
        (3, 1, 2, 13, 13, 16, 32),
        (2, 2, 1, 3, 17, 5, 6),
        (1, 2, 2, 9, 11, 8, 8),
    ],
    ids=str,
)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_matches_reference(shape: tuple[int, ...], causal: bool, device: torch.device) -> None:
    b, n, m, t_q, t_k, d, d_out = shape
    if causal and t_q > t_k:
        pytest.skip("causal with T_q > T_k leaves the first queries with no key at all (NaN rows)")
    q, k, v, w = _inputs(*shape, device=device)
    gates = torch.full((n,), 1 / n, device=device, requires_grad=True)
    padding = torch.zeros(b, t_k, dtype=torch.bool, device=device)
    padding[-1, t_k // 2 + 1 :] = True  # the last sentence is shorter; its first keys stay visible
    assert_matches_reference("branch_attention", q, k, v, w, gates, padding, causal=causal)
    assert_matches_reference("branch_attention", q, k, v, w, gates, None, causal=causal)


def test_dropped_branches_are_skipped_and_get_zero_gradient(device: torch.device) -> None:
    q, k, v, w = _inputs(2, 3, 2, 6, 6, 8, 16, device)
    gates = torch.tensor([1 / (3 * 0.7), 0.0, 1 / (3 * 0.7)], device=device)  # branch 1 dropped
    assert_matches_reference("branch_attention", q, k, v, w, gates, None, causal=True)
    k_bad = k.detach().clone()
    k_bad[:, 1] = float("nan")  # the dropped branch's programs exit before reading it
    out = branch_attention(q, k_bad, v, w, gates, backend="triton")
    assert out.isfinite().all()
    out.sum().backward()
    assert q.grad is not None and (q.grad[:, 1] == 0).all() and (q.grad[:, 0] != 0).any()


@pytest.mark.parametrize("padded", [False, True], ids=["no-pad", "pad"])
def test_dropped_branch_qkv_gradients_are_exactly_zero(padded: bool, device: torch.device) -> None:
    """A dropped branch's q, k, v get exact zeros; the kept branches' gradients match the reference."""
    shape = (2, 3, 2, 5, 7, 8, 16)
    upstream = torch.randn(2, 5, 16, device=device)
    padding = torch.zeros(2, 7, dtype=torch.bool, device=device)
    padding[-1, 4:] = padded
    gates = torch.tensor([0.0, 0.5, 0.5], device=device)  # branch 0 dropped
    grads = {}
    for backend in ("triton", "reference"):
        torch.manual_seed(1)
        q, k, v, w = _inputs(*shape, device=device)
        out = branch_attention(q, k, v, w, gates, padding, backend=backend)
        grads[backend] = torch.autograd.grad(out, (q, k, v, w), upstream)
    for name, got, want in zip(("q", "k", "v", "out_weight"), grads["triton"], grads["reference"]):
        branch_dim = 0 if name == "out_weight" else 1
        dropped, kept = got.select(branch_dim, 0), got.narrow(branch_dim, 1, 2)
        assert (dropped == 0).all(), f"the dropped branch's {name} gradient is not exactly zero"
        torch.testing.assert_close(kept, want.narrow(branch_dim, 1, 2), atol=1e-4, rtol=1e-4)


def test_all_branches_dropped_give_zeros_without_nan(device: torch.device) -> None:
    q, k, v, w = _inputs(2, 3, 2, 6, 4, 8, 16, device)
    padding = torch.zeros(2, 4, dtype=torch.bool, device=device)
    padding[-1] = True  # a fully padded sentence: NaN rows in the reference, but never computed here
    gates = torch.zeros(3, device=device, requires_grad=True)
    out = branch_attention(q, k, v, w, gates, padding, causal=True, backend="triton")
    assert out.shape == (2, 6, 16) and (out == 0).all()
    grads = torch.autograd.grad(out, (q, k, v, w, gates), torch.randn_like(out))
    for name, grad in zip(("q", "k", "v", "out_weight", "gates"), grads):
        assert (grad == 0).all(), f"{name} gradient is not exactly zero"


def test_gate_gradients(device: torch.device) -> None:
    """A kept gate's gradient matches the reference's; a dropped gate's is 0 (module docstring)."""
    q, k, v, w = (t.detach() for t in _inputs(2, 3, 2, 5, 5, 4, 8, device))
    upstream = torch.randn(2, 5, 8, device=device)
    grads = []
    for backend in ("triton", "reference"):
        gates = torch.tensor([0.5, 0.0, 1.5], device=device, requires_grad=True)
        (grad,) = torch.autograd.grad(branch_attention(q, k, v, w, gates, backend=backend), gates, upstream)
        grads.append(grad)
    triton_grad, reference_grad = grads
    assert triton_grad[1] == 0 and reference_grad[1] != 0
    torch.testing.assert_close(triton_grad[[0, 2]], reference_grad[[0, 2]], atol=1e-4, rtol=1e-4)


def _fail_on_sync(name: str) -> Callable[..., Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the Triton path called Tensor.{name}, a host sync")

    return method


def test_triton_path_does_not_sync_with_the_host(device: torch.device, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``nonzero``/``item``/``tolist`` or Python truth test of a tensor in the wrapper (CUDA-graph friendly).

    On a GPU ``torch.cuda.set_sync_debug_mode("error")`` catches any sync; on CPU the usual culprits raise.
    """
    q, k, v, w = _inputs(2, 2, 2, 5, 5, 4, 8, device)
    gates = torch.tensor([0.0, 1.0], device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = branch_attention(q, k, v, w, gates, backend="triton")
            grads = torch.autograd.grad(out, (q, k, v, w), torch.ones_like(out))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    else:
        with monkeypatch.context() as patch:
            for name in ("nonzero", "item", "tolist", "__bool__"):
                patch.setattr(torch.Tensor, name, _fail_on_sync(name))
            out = branch_attention(q, k, v, w, gates, backend="triton")
            grads = torch.autograd.grad(out, (q, k, v, w), torch.ones_like(out))
    assert out.isfinite().all() and all(g.isfinite().all() for g in grads)


def test_gates_fold_into_the_output_projection(device: torch.device) -> None:
    """sum_i c_i heads_i W_i equals the kernel with all gates 1 applied to c_i W_i."""
    q, k, v, w = _inputs(1, 2, 2, 4, 4, 4, 8, device)
    c = torch.tensor([0.25, 0.75], device=device)
    folded = branch_attention(q, k, v, w * c[:, None, None], torch.ones(2, device=device), backend="triton")
    torch.testing.assert_close(branch_attention(q, k, v, w, c, backend="triton"), folded)


def test_gradcheck_of_the_attention_core(device: torch.device) -> None:
    from reprobook.kernels.branch_attention import _FusedAttention

    q, k, v = (torch.randn(1, 2, 2, 3, 4, device=device, requires_grad=True) for _ in range(3))
    gates = torch.tensor([0.0, 0.5], device=device)  # branch 0 dropped: zero heads, zero gradients
    pad = torch.tensor([[0, 0, 1]], dtype=torch.int8, device=device)
    ref = lambda q, k, v: (
        gates.ne(0)[:, None, None, None]
        * (
            torch.softmax((q @ k.transpose(-1, -2) / 2).masked_fill(pad.bool()[:, None, None, None], -torch.inf), -1)
            @ v
        )
    )
    torch.testing.assert_close(_FusedAttention.apply(q, k, v, gates, pad, False), ref(q, k, v))
    for backend_out, ref_out in zip(
        torch.autograd.grad(_FusedAttention.apply(q, k, v, gates, pad, False).pow(2).sum(), (q, k, v)),
        torch.autograd.grad(ref(q, k, v).pow(2).sum(), (q, k, v)),
    ):
        torch.testing.assert_close(backend_out, ref_out)
        assert (backend_out[:, 0] == 0).all()


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_bad_inputs_raise_clear_errors(backend: str, device: torch.device) -> None:
    q, k, v, w = (t.detach() for t in _inputs(1, 2, 2, 3, 4, 4, 8, device))
    gates = torch.full((2,), 0.5, device=device)
    with pytest.raises(ValueError, match="same shape"):
        branch_attention(q, k, v[..., :3, :], w, gates, backend=backend)
    with pytest.raises(ValueError, match="gates"):
        branch_attention(q, k, v, w, torch.ones(3, device=device), backend=backend)
    with pytest.raises(ValueError, match="out_weight"):
        branch_attention(q, k, v, w[:, :, :5], gates, backend=backend)
    with pytest.raises(ValueError, match="key_padding_mask"):
        branch_attention(q, k, v, w, gates, torch.zeros(1, 4, device=device), backend=backend)
    with pytest.raises(TypeError, match="dtype"):
        branch_attention(q.long(), k, v, w, gates, backend=backend)


def test_sequences_longer_than_one_block_run_the_reference(device: torch.device) -> None:
    """Above ``MAX_LEN`` tokens "auto" runs the reference (the one-block kernel is slower there); "triton" says why."""
    from reprobook.kernels.branch_attention import MAX_LEN

    q, k, v, w = (t.detach() for t in _inputs(1, 2, 1, 2, MAX_LEN + 1, 4, 8, device))
    gates = torch.full((2,), 0.5, device=device)
    expected = branch_attention(q, k, v, w, gates, backend="reference")
    torch.testing.assert_close(branch_attention(q, k, v, w, gates, backend="auto"), expected)
    with pytest.raises(RuntimeError, match=f"longer than the one-block kernel's {MAX_LEN} tokens"):
        branch_attention(q, k, v, w, gates, backend="triton")
    short = k[..., :MAX_LEN, :]
    torch.testing.assert_close(  # at MAX_LEN the kernel itself runs, and matches
        branch_attention(q, short, short, w, gates, backend="auto"),
        branch_attention(q, short, short, w, gates, backend="reference"),
    )
