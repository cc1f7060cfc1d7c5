"""Fused vocabulary projection + log-softmax + gather: per-token cross-entropy without the logits matrix.

A decoder's last step turns hidden states ``h: (N, D)`` into logits ``z = h W^T: (N, V)`` over a vocabulary of
``V`` words and scores the target word ``t_n`` of each of the ``N`` tokens::

    loss_n = logsumexp_v(z_nv) - z_{n, t_n}          (0 where t_n == ignore_index)

Backward, with the upstream gradient ``u_n = dL/dloss_n`` and ``p = softmax(z)``::

    G   = u[:, None] * (p - onehot(t))                 # (N, V), never stored
    dh  = G W        dW = G^T h

Written out, the ``(N, V)`` logits (and their gradient, and usually the softmax) are the largest tensors of
training at real scale: 4 bytes x ``N`` tokens x ``V`` words each. Dual learning multiplies ``N``: the
reconstruction of every monolingual sentence is scored under ``K`` sampled intermediate translations, in both
directions (and through a third language in multi-step loops). The kernels here never materialise them, in the
spirit of fused linear cross-entropy (Liger-Kernel's ``FusedLinearCrossEntropy``; Wijmans et al.'s "Cut your
losses", 2024):

* **forward**: one Triton program per block of ``BLOCK_N`` tokens walks over the vocabulary ``BLOCK_V`` words at
  a time: ``tl.dot`` of its hidden states with a tile of ``W``, then the online log-sum-exp (running max ``m``
  and running sum ``l`` rescaled by ``exp(m_old - m_new)``, as in ``softmax.py``) and the target's logit when
  the tile holds it. It stores the loss and ``lse_n = m + log l``: ``O(N)`` memory instead of ``O(N V)``;
* **backward**: the same walk recomputes each logit tile, turns it into ``G`` with the saved ``lse``, adds
  ``G W_tile`` to ``dh`` in registers and ``G^T h`` into ``dW`` with atomic adds (programs of different token
  blocks share the rows of ``dW``).

Arithmetic is float32 (IEEE products, no TF32); the loss is float32 whatever the input dtype, the gradients
have the inputs' dtypes. The feature dimension ``D`` is held in one block (``D <= 1024``); a production kernel
would also tile ``D``. The PyTorch reference :func:`linear_cross_entropy_reference` materialises the logits and
calls ``F.cross_entropy``; it is what runs on CPU.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from reprobook._validate import describe
from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_DIM = 1024


@jit
def _forward_kernel(
    h_ptr,
    w_ptr,
    t_ptr,
    loss_ptr,
    lse_ptr,
    n_tokens,
    vocab,
    dim,
    h_stride,
    w_stride,
    ignore_index,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
    V_CHUNKS: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_tokens
    d = tl.arange(0, BLOCK_D)
    d_ok = d < dim
    h = tl.load(h_ptr + rows[:, None] * h_stride + d[None, :], mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    h = h.to(tl.float32)
    target = tl.load(t_ptr + rows, mask=row_ok, other=ignore_index)
    m = tl.full((BLOCK_N,), float("-inf"), tl.float32)  # running max of the logits
    l = tl.zeros((BLOCK_N,), tl.float32)  # running sum of exp(z - m)
    z_target = tl.zeros((BLOCK_N,), tl.float32)
    for chunk in range(V_CHUNKS):  # a compile-time trip count: see softmax.py on the interpreter
        cols = chunk * BLOCK_V + tl.arange(0, BLOCK_V)
        col_ok = cols < vocab
        w_t = tl.load(w_ptr + cols[None, :] * w_stride + d[:, None], mask=d_ok[:, None] & col_ok[None, :], other=0.0)
        z = tl.dot(h, w_t.to(tl.float32), input_precision="ieee")  # (BLOCK_N, BLOCK_V) logits
        z = tl.where(col_ok[None, :], z, float("-inf"))
        m_new = tl.maximum(m, tl.max(z, 1))
        l = l * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new[:, None]), 1)
        m = m_new
        z_target += tl.sum(tl.where(cols[None, :] == target[:, None], z, 0.0), 1)
    lse = m + tl.log(l)
    valid = row_ok & (target != ignore_index)
    tl.store(loss_ptr + rows, tl.where(valid, lse - z_target, 0.0), mask=row_ok)
    tl.store(lse_ptr + rows, lse, mask=row_ok)


@jit
def _backward_kernel(
    h_ptr,
    w_ptr,
    t_ptr,
    lse_ptr,
    u_ptr,
    dh_ptr,
    dw_ptr,
    n_tokens,
    vocab,
    dim,
    h_stride,
    w_stride,
    ignore_index,
    COMPUTE_DH: tl.constexpr,
    COMPUTE_DW: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
    V_CHUNKS: tl.constexpr,
):
    """``dh`` (float32, ``(N, D)``) is written; ``dw`` (float32, ``(V, D)``, zeroed) is added to atomically."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_tokens
    d = tl.arange(0, BLOCK_D)
    d_ok = d < dim
    tile_ok = row_ok[:, None] & d_ok[None, :]
    h = tl.load(h_ptr + rows[:, None] * h_stride + d[None, :], mask=tile_ok, other=0.0).to(tl.float32)
    target = tl.load(t_ptr + rows, mask=row_ok, other=ignore_index)
    valid = row_ok & (target != ignore_index)
    lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
    u = tl.where(valid, tl.load(u_ptr + rows, mask=row_ok, other=0.0), 0.0)  # ignored tokens get no gradient
    dh = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    for chunk in range(V_CHUNKS):
        cols = chunk * BLOCK_V + tl.arange(0, BLOCK_V)
        col_ok = cols < vocab
        w_t = tl.load(w_ptr + cols[None, :] * w_stride + d[:, None], mask=d_ok[:, None] & col_ok[None, :], other=0.0)
        w_t = w_t.to(tl.float32)  # (BLOCK_D, BLOCK_V)
        z = tl.dot(h, w_t, input_precision="ieee")
        p = tl.where(col_ok[None, :], tl.exp(z - lse[:, None]), 0.0)
        onehot = tl.where(cols[None, :] == target[:, None], 1.0, 0.0)
        g = tl.where(valid[:, None], (p - onehot) * u[:, None], 0.0)  # dL/dz for this tile
        if COMPUTE_DH:
            dh += tl.dot(g, tl.trans(w_t), input_precision="ieee")
        if COMPUTE_DW:
            dw_tile = tl.dot(tl.trans(g), h, input_precision="ieee")  # (BLOCK_V, BLOCK_D)
            tl.atomic_add(dw_ptr + cols[:, None] * dim + d[None, :], dw_tile, mask=col_ok[:, None] & d_ok[None, :])
    if COMPUTE_DH:
        tl.store(dh_ptr + rows[:, None] * dim + d[None, :], dh, mask=tile_ok)


def _launch_config(dim: int, vocab: int) -> dict[str, Any]:
    block_d = max(16, triton.next_power_of_2(dim))
    block_n = 32 if block_d <= 128 else 16
    block_v = 64 if block_d <= 256 else 32
    return {
        "BLOCK_N": block_n,
        "BLOCK_V": block_v,
        "BLOCK_D": block_d,
        "V_CHUNKS": triton.cdiv(vocab, block_v),
        "num_warps": 4,
    }


def _flat(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``hidden (..., D) -> (N, D)`` with unit column stride, ``target (...) -> (N,)``, ``weight`` row-major."""
    h = hidden.reshape(-1, hidden.shape[-1])
    h = h if h.stride(-1) == 1 else h.contiguous()
    w = weight if weight.stride(-1) == 1 else weight.contiguous()
    return h, w, target.reshape(-1).contiguous()


def _forward(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, ...]:
    """Triton forward on flat inputs -> ``(loss (N,), lse (N,))``, float32."""
    n, dim = h.shape
    loss = torch.empty(n, dtype=torch.float32, device=h.device)
    lse = torch.empty(n, dtype=torch.float32, device=h.device)
    if n == 0:
        return loss, lse
    config = _launch_config(dim, len(w))
    grid = (triton.cdiv(n, config["BLOCK_N"]),)
    with torch.cuda.device_of(h):
        _forward_kernel[grid](h, w, t, loss, lse, n, len(w), dim, h.stride(0), w.stride(0), ignore_index, **config)
    return loss, lse


class _TritonLinearCrossEntropy(torch.autograd.Function):
    """Autograd for the Triton path: ``hidden`` and ``weight`` get gradients (no double backward)."""

    @staticmethod
    def forward(
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, ignore_index: int
    ) -> torch.Tensor:
        h, w, t = _flat(hidden, weight, target)
        loss, lse = _forward(h, w, t, ignore_index)
        ctx.save_for_backward(h, w, t, lse)
        ctx.ignore_index, ctx.hidden_shape = ignore_index, hidden.shape
        return loss.view(target.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, u: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, w, t, lse = ctx.saved_tensors
        needs_dh, needs_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        n, dim = h.shape
        dh = torch.zeros(n, dim, dtype=torch.float32, device=h.device)
        dw = torch.zeros(w.shape, dtype=torch.float32, device=w.device)
        if n and (needs_dh or needs_dw):
            config = _launch_config(dim, len(w))
            grid = (triton.cdiv(n, config["BLOCK_N"]),)
            u = u.reshape(-1).float().contiguous()
            with torch.cuda.device_of(h):
                _backward_kernel[grid](
                    h, w, t, lse, u, dh, dw, n, len(w), dim, h.stride(0), w.stride(0), ctx.ignore_index,
                    COMPUTE_DH=needs_dh, COMPUTE_DW=needs_dw, **config,
                )  # fmt: skip
        grad_h = dh.to(h.dtype).view(ctx.hidden_shape) if needs_dh else None
        grad_w = dw.to(w.dtype) if needs_dw else None
        return grad_h, grad_w, None, None


def _check_inputs(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, ignore_index: int) -> None:
    for name, t in (("hidden", hidden), ("weight", weight)):
        if not isinstance(t, torch.Tensor) or t.dtype not in DTYPES:
            raise TypeError(f"{name} must be a float tensor of dtype {DTYPES}, got {describe(t)}")
    if hidden.ndim < 1 or weight.ndim != 2 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"hidden (..., D) and weight (V, D) must share D, got hidden {tuple(hidden.shape)} and weight "
            f"{tuple(weight.shape)}"
        )
    if hidden.dtype != weight.dtype:
        raise TypeError(f"hidden and weight must share a dtype, got {hidden.dtype} and {weight.dtype}")
    if weight.shape[0] < 1:
        raise ValueError("weight must hold at least one vocabulary row (V >= 1)")
    if weight.shape[1] > MAX_DIM:
        raise ValueError(f"the feature dimension D={weight.shape[1]} is above the kernel's limit of {MAX_DIM}")
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long or target.shape != hidden.shape[:-1]:
        raise ValueError(
            f"target must be a long tensor of shape {tuple(hidden.shape[:-1])} (hidden's leading dimensions), "
            f"got {describe(target)}"
        )
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise ValueError(f"ignore_index must be an integer, got {ignore_index!r}")
    if len({hidden.device, weight.device, target.device}) > 1:
        raise ValueError(f"hidden, weight and target must be on one device, got {hidden.device}, {weight.device}, ...")
    kept = target[target != ignore_index]
    if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= weight.shape[0]):
        bad = int(kept.min()) if int(kept.min()) < 0 else int(kept.max())
        raise ValueError(
            f"target holds word id {bad}, outside the vocabulary 0..{weight.shape[0] - 1} "
            f"(and not ignore_index={ignore_index})"
        )


def linear_cross_entropy_reference(
    hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """PyTorch reference of :func:`linear_cross_entropy`: materialises the ``(N, V)`` logits in float32."""
    _check_inputs(hidden, weight, target, ignore_index)
    logits = hidden.reshape(-1, hidden.shape[-1]).float() @ weight.float().T
    loss = F.cross_entropy(logits, target.reshape(-1), ignore_index=ignore_index, reduction="none")
    return loss.view(target.shape)


def linear_cross_entropy_triton(
    hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """The Triton kernels behind :func:`linear_cross_entropy` (CUDA tensors, or any under ``TRITON_INTERPRET=1``)."""
    _check_inputs(hidden, weight, target, ignore_index)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        loss: torch.Tensor = _TritonLinearCrossEntropy.apply(hidden, weight, target, ignore_index)
        return loss
    h, w, t = _flat(hidden.detach(), weight.detach(), target)
    return _forward(h, w, t, ignore_index)[0].view(target.shape)


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[Any, ...]:
    """Benchmark inputs: 4096 tokens (``B K T`` = 16 sentences x 4 samples x 64 tokens), ``D = 512``, a
    vocabulary of ``size`` words, one token in eight ignored (padding)."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(4096, 512, generator=generator) / 512**0.5
    weight = torch.randn(size, 512, generator=generator)
    target = torch.randint(size, (4096,), generator=generator)
    target[::8] = -100
    return hidden.to(device, dtype), weight.to(device, dtype), target.to(device)


LINEAR_CROSS_ENTROPY = register(
    KernelSpec(
        name="linear_cross_entropy",
        reference=linear_cross_entropy_reference,
        triton=linear_cross_entropy_triton,
        make_inputs=_make_inputs,
        sizes=(8_192, 32_768, 131_072),
        atol=1e-4,
        rtol=1e-4,
    )
)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = -100,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Per-token cross-entropy of the projection ``hidden @ weight.T``, without storing the logits.

    ``hidden``: ``(..., D)`` float16/bfloat16/float32 decoder states; ``weight``: ``(V, D)`` the output
    projection (a tied target embedding); ``target``: long ``(...)``, word ids in ``0..V-1`` or
    ``ignore_index``. Returns float32 ``(...)``: ``logsumexp(z) - z[target]`` per token, 0 where the target is
    ``ignore_index`` (sum or average it as the loss needs: per sentence for a reconstruction reward, over the
    non-ignored tokens for a mean). Differentiable in ``hidden`` and ``weight``. ``backend`` as for every
    kernel (:mod:`reprobook.kernels.registry`): the Triton kernels on CUDA, the reference elsewhere.
    """
    loss: torch.Tensor = LINEAR_CROSS_ENTROPY(hidden, weight, target, ignore_index, backend=backend)
    return loss
