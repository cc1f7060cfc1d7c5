"""Multi-branch attention (MAT, Fan et al. 2020) as one fused attention call that skips dropped branches.

MAT averages ``N_a`` independent multi-head attentions with gates ``c_i`` (``1/N_a`` at inference,
``beta_i / (N_a (1 - rho))`` under drop-branch, ``beta_i ~ Bernoulli(1 - rho)``)::

    out = sum_i c_i * Concat_j(head_ij) W^O_i,    head_ij = softmax(Q_ij K_ij^T / sqrt(d_k) + mask) V_ij

The reference computes every branch, dropped ones included, and multiplies them by their gate. The Triton path

1. treats all ``N x M`` heads as the heads of one attention call, one program per (batch element, branch,
   head); each program loads its branch's gate and, when it is 0, writes zero heads and exits before any
   attention math, so a dropped branch's FLOPs (and its q, k, v reads) are skipped;
2. folds the gates into the output projection: ``sum_i c_i Concat_j(head_ij) W^O_i`` is one GEMM of
   ``Concat_{i,j}(head_ij)`` with the stacked ``[c_1 W^O_1; ...; c_N W^O_N]``.

The launch grid and every shape are static (``B x N x M`` programs whatever the gates) and the gates never
leave the device: no host synchronisation, so a training step can be captured in a CUDA graph. The price is
that a dropped branch still costs its (empty) programs and its zero columns in the output GEMM.

Each program holds a whole (short) sequence in one block, so lengths are limited to ``MAX_LEN`` = 64: fine for the
book's sentences. Longer ones are the reference's: on an H200 (float32, 64 x 2 x 4 heads of d_k = 64) the one-block
kernel was 1.3x and 1.1x the reference's speed at 16 and 64 tokens but 0.1x at 128 (0.2x with 8 warps), so
``backend="auto"`` runs the reference above 64 tokens; long sequences would need the tiled online-softmax loop of
FlashAttention. The backward is a second
Triton kernel that recomputes the probabilities from the saved log-sum-exp (no ``T_q x T_k`` matrix is stored).

The gates are constants (sampled, not learnt): the Triton path gives a dropped gate a zero gradient, since its
branch's heads are zero, where the reference's einsum gives ``<head_i W^O_i, upstream>``; a kept gate gets the
same gradient in both. A dropped branch's q, k, v (and ``W^O_i``) get zero gradients in both.

Shapes: ``q: (B, N, M, T_q, d_k)``, ``k, v: (B, N, M, T_k, d_k)``, ``out_weight: (N, d_out, M * d_k)`` (each
branch's ``W^O`` as an ``nn.Linear`` weight), ``gates: (N,)``, ``key_padding_mask: (B, T_k)`` bool, True at
padding. Output ``(B, T_q, d_out)`` without the output bias (``sum_i c_i b_i``, added by the caller).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_LEN = 64  # one block per sequence; slower than the reference above it (see module docstring)


@jit
def _forward_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    gate_ptr,
    pad_ptr,
    o_ptr,
    lse_ptr,
    t_q,
    t_k,
    d,
    branches,
    heads,
    scale,
    HAS_PAD: tl.constexpr,
    CAUSAL: tl.constexpr,
    BQ: tl.constexpr,
    BK: tl.constexpr,
    BD: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)  # one (batch, branch, head) triple
    batch, branch = pid // (branches * heads), pid // heads % branches
    rq, rk, rd = tl.arange(0, BQ), tl.arange(0, BK), tl.arange(0, BD)
    q_mask = (rq < t_q)[:, None] & (rd < d)[None, :]
    k_mask = (rk < t_k)[:, None] & (rd < d)[None, :]
    q_off = pid * t_q * d + rq[:, None] * d + rd[None, :]  # also o's
    k_off = pid * t_k * d + rk[:, None] * d + rd[None, :]
    if tl.load(gate_ptr + branch) == 0:  # dropped branch: zero heads, no attention math
        tl.store(o_ptr + q_off, tl.zeros((BQ, BD), o_ptr.dtype.element_ty), mask=q_mask)
        tl.store(lse_ptr + pid * t_q + rq, tl.zeros((BQ,), tl.float32), mask=rq < t_q)  # finite; backward skips it too
        return
    q = tl.load(q_ptr + q_off, mask=q_mask, other=0.0).to(tl.float32)
    k = tl.load(k_ptr + k_off, mask=k_mask, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + k_off, mask=k_mask, other=0.0).to(tl.float32)
    valid = _valid(pad_ptr, batch, rq, rk, t_q, t_k, HAS_PAD, CAUSAL)
    s = tl.where(valid, tl.dot(q, tl.trans(k), input_precision="ieee") * scale, float("-inf"))
    m = tl.max(s, 1)
    m = tl.where(m == float("-inf"), 0.0, m)  # rows past t_q; a fully masked real row still gives 0/0 = NaN
    p = tl.exp(s - m[:, None])
    l = tl.sum(p, 1)
    o = tl.dot(p / l[:, None], v, input_precision="ieee")
    tl.store(o_ptr + q_off, o.to(o_ptr.dtype.element_ty), mask=q_mask)
    tl.store(lse_ptr + pid * t_q + rq, m + tl.log(l), mask=rq < t_q)


@jit
def _valid(pad_ptr, batch, rq, rk, t_q, t_k, HAS_PAD: tl.constexpr, CAUSAL: tl.constexpr):
    """``(BQ, BK)`` bool: key inside the sequence, not padding, and (causal) not in the query's future."""
    valid = (rk < t_k)[None, :] & (rq < t_q)[:, None]
    if HAS_PAD:
        pad = tl.load(pad_ptr + batch * t_k + rk, mask=rk < t_k, other=1)
        valid = valid & (pad == 0)[None, :]
    if CAUSAL:
        valid = valid & (rk[None, :] <= rq[:, None] + (t_k - t_q))
    return valid


@jit
def _backward_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    gate_ptr,
    o_ptr,
    do_ptr,
    lse_ptr,
    pad_ptr,
    dq_ptr,
    dk_ptr,
    dv_ptr,
    t_q,
    t_k,
    d,
    branches,
    heads,
    scale,
    HAS_PAD: tl.constexpr,
    CAUSAL: tl.constexpr,
    BQ: tl.constexpr,
    BK: tl.constexpr,
    BD: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    batch, branch = pid // (branches * heads), pid // heads % branches
    rq, rk, rd = tl.arange(0, BQ), tl.arange(0, BK), tl.arange(0, BD)
    q_mask = (rq < t_q)[:, None] & (rd < d)[None, :]
    k_mask = (rk < t_k)[:, None] & (rd < d)[None, :]
    q_off = pid * t_q * d + rq[:, None] * d + rd[None, :]
    k_off = pid * t_k * d + rk[:, None] * d + rd[None, :]
    if tl.load(gate_ptr + branch) == 0:  # dropped branch: its heads are the constant 0, so dq = dk = dv = 0
        tl.store(dq_ptr + q_off, tl.zeros((BQ, BD), dq_ptr.dtype.element_ty), mask=q_mask)
        tl.store(dk_ptr + k_off, tl.zeros((BK, BD), dk_ptr.dtype.element_ty), mask=k_mask)
        tl.store(dv_ptr + k_off, tl.zeros((BK, BD), dv_ptr.dtype.element_ty), mask=k_mask)
        return
    q = tl.load(q_ptr + q_off, mask=q_mask, other=0.0).to(tl.float32)
    k = tl.load(k_ptr + k_off, mask=k_mask, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + k_off, mask=k_mask, other=0.0).to(tl.float32)
    o = tl.load(o_ptr + q_off, mask=q_mask, other=0.0).to(tl.float32)
    do = tl.load(do_ptr + q_off, mask=q_mask, other=0.0).to(tl.float32)
    lse = tl.load(lse_ptr + pid * t_q + rq, mask=rq < t_q, other=0.0)
    valid = _valid(pad_ptr, batch, rq, rk, t_q, t_k, HAS_PAD, CAUSAL)
    s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
    p = tl.where(valid, tl.exp(s - lse[:, None]), 0.0)  # P recomputed from the saved log-sum-exp
    dv = tl.dot(tl.trans(p), do, input_precision="ieee")  # dV = P^T dO
    dp = tl.dot(do, tl.trans(v), input_precision="ieee")  # dP = dO V^T
    ds = p * (dp - tl.sum(do * o, 1)[:, None])  # softmax backward: dS = P * (dP - rowsum(dO * O))
    dq = tl.dot(ds, k, input_precision="ieee") * scale
    dk = tl.dot(tl.trans(ds), q, input_precision="ieee") * scale
    tl.store(dq_ptr + q_off, dq.to(dq_ptr.dtype.element_ty), mask=q_mask)
    tl.store(dk_ptr + k_off, dk.to(dk_ptr.dtype.element_ty), mask=k_mask)
    tl.store(dv_ptr + k_off, dv.to(dv_ptr.dtype.element_ty), mask=k_mask)


def _blocks(t_q: int, t_k: int, d: int) -> dict[str, int]:
    # tl.dot needs every dimension >= 16 on a GPU
    return {
        "BQ": max(16, triton.next_power_of_2(t_q)),
        "BK": max(16, triton.next_power_of_2(t_k)),
        "BD": max(16, triton.next_power_of_2(d)),
    }


class _FusedAttention(torch.autograd.Function):
    """Softmax attention over ``(B, N, M, T, d)`` heads, zero heads where ``gates == 0``: Triton forward and backward.

    ``gates: (N,)`` only selects the dropped branches (its values are folded in later), so it gets no gradient.
    """

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        gates: torch.Tensor,
        pad: torch.Tensor | None,
        causal: bool,
    ) -> torch.Tensor:
        b, n, m, t_q, d = q.shape
        t_k = k.shape[3]
        launch = bool(q.numel() and k.numel())  # shapes only: no device sync
        o = torch.empty_like(q) if launch else torch.zeros_like(q)  # every program writes its whole head
        lse = torch.empty(b, n, m, t_q, dtype=torch.float32, device=q.device)
        if launch:
            with torch.cuda.device_of(q):
                _forward_kernel[(b * n * m,)](
                    q,
                    k,
                    v,
                    gates,
                    pad if pad is not None else q,
                    o,
                    lse,
                    t_q,
                    t_k,
                    d,
                    n,
                    m,
                    1.0 / math.sqrt(d),
                    HAS_PAD=pad is not None,
                    CAUSAL=causal,
                    **_blocks(t_q, t_k, d),
                )
        ctx.save_for_backward(q, k, v, gates, o, lse, pad)
        ctx.causal = causal
        return o

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, do: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, gates, o, lse, pad = ctx.saved_tensors
        b, n, m, t_q, d = q.shape
        t_k = k.shape[3]
        launch = bool(q.numel() and k.numel())
        dq, dk, dv = (torch.empty_like(x) if launch else torch.zeros_like(x) for x in (q, k, v))
        if launch:
            with torch.cuda.device_of(q):
                _backward_kernel[(b * n * m,)](
                    q,
                    k,
                    v,
                    gates,
                    o,
                    do.contiguous(),
                    lse,
                    pad if pad is not None else q,
                    dq,
                    dk,
                    dv,
                    t_q,
                    t_k,
                    d,
                    n,
                    m,
                    1.0 / math.sqrt(d),
                    HAS_PAD=pad is not None,
                    CAUSAL=ctx.causal,
                    **_blocks(t_q, t_k, d),
                )
        return dq, dk, dv, None, None, None


def _check_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out_weight: torch.Tensor,
    gates: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
) -> None:
    for name, t in (("q", q), ("k", k), ("v", v), ("out_weight", out_weight), ("gates", gates)):
        if not isinstance(t, torch.Tensor) or t.dtype not in DTYPES:
            raise TypeError(
                f"branch_attention needs {name} to be a float tensor of dtype {DTYPES}, "
                f"got {getattr(t, 'dtype', type(t))}"
            )
    if q.ndim != 5 or k.ndim != 5 or v.ndim != 5:
        raise ValueError(f"q, k, v must be (B, N, M, T, d_k); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if k.shape != v.shape:
        raise ValueError(
            f"k and v must have the same shape (same key length), got {tuple(k.shape)} and {tuple(v.shape)}"
        )
    if q.shape[:3] != k.shape[:3] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} disagree on B, N, M or d_k")
    b, n, m, _, d = q.shape
    if out_weight.ndim != 3 or out_weight.shape[0] != n or out_weight.shape[2] != m * d:
        raise ValueError(
            f"out_weight must be (N, d_out, M * d_k) = ({n}, d_out, {m * d}), got {tuple(out_weight.shape)}"
        )
    if gates.shape != (n,):
        raise ValueError(f"gates must have shape (N,) = ({n},), got {tuple(gates.shape)}")
    if key_padding_mask is not None and (
        key_padding_mask.dtype != torch.bool or key_padding_mask.shape != (b, k.shape[3])
    ):
        raise ValueError(
            f"key_padding_mask must be a bool (B, T_k) = ({b}, {k.shape[3]}) tensor, True at padding; got "
            f"{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
        )


def branch_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out_weight: torch.Tensor,
    gates: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
) -> torch.Tensor:
    """Every branch computed, then ``sum_i gates_i Concat_j(head_ij) W^O_i^T``; same signature as the kernel."""
    _check_inputs(q, k, v, out_weight, gates, key_padding_mask)
    b, n, m, t_q, d = q.shape
    t_k = k.shape[3]
    scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(d)  # (B, N, M, T_q, T_k)
    if key_padding_mask is not None:
        scores = scores.masked_fill(key_padding_mask[:, None, None, None, :], float("-inf"))
    if causal:
        future = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).triu(1 + t_k - t_q)
        scores = scores.masked_fill(future, float("-inf"))
    heads = torch.softmax(scores, dim=-1) @ v.float()  # (B, N, M, T_q, d)
    heads = heads.permute(0, 1, 3, 2, 4).reshape(b, n, t_q, m * d)
    out = torch.einsum("bntc,noc,n->bto", heads, out_weight.float(), gates.float())
    return out.to(q.dtype)


def _too_long(q: torch.Tensor, k: torch.Tensor, *_: Any, **__: Any) -> str | None:
    """Why the one-block kernel does not serve ``q``/``k`` (a length above ``MAX_LEN``), or None."""
    if not (isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor) and q.ndim == k.ndim == 5):
        return None  # the implementation that runs reports the bad shapes
    if max(q.shape[3], k.shape[3]) <= MAX_LEN:
        return None
    return f"the sequences are longer than the one-block kernel's {MAX_LEN} tokens ({q.shape[3]}, {k.shape[3]})"


def branch_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out_weight: torch.Tensor,
    gates: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
) -> torch.Tensor:
    """All heads in one Triton attention call that skips dropped branches, gates folded into one output GEMM.

    Static shapes and no host synchronisation (CUDA-graph friendly); autograd included.
    """
    _check_inputs(q, k, v, out_weight, gates, key_padding_mask)
    b, n, m, t_q, d = q.shape
    too_long = _too_long(q, k)
    if too_long:
        raise ValueError(f"the Triton path holds a sequence in one block: {too_long}")
    d_out = out_weight.shape[1]
    pad = None if key_padding_mask is None else key_padding_mask.to(torch.int8).contiguous()
    o: torch.Tensor = _FusedAttention.apply(  # (B, N, M, T_q, d_k), zero for a dropped branch
        q.contiguous(), k.contiguous(), v.contiguous(), gates.detach().contiguous(), pad, causal
    )
    heads = o.permute(0, 3, 1, 2, 4).reshape(b, t_q, n * m * d)  # Concat_{i,j} head_ij
    stacked = (gates[:, None, None] * out_weight).permute(1, 0, 2).reshape(d_out, n * m * d)  # [c_i W^O_i]_i
    return heads @ stacked.t().to(heads.dtype)


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[Any, ...]:
    """Benchmark inputs: 64 sentences of ``size`` tokens, 2 branches x 4 heads of d_k = 64, one branch dropped."""
    q, k, v = (torch.randn(64, 2, 4, size, 64, device=device, dtype=dtype) for _ in range(3))
    out_weight = torch.randn(2, 256, 256, device=device, dtype=dtype) / 16
    gates = torch.tensor([1 / (2 * 0.7), 0.0], device=device, dtype=dtype)
    return q, k, v, out_weight, gates


BRANCH_ATTENTION = register(
    KernelSpec(
        name="branch_attention",
        reference=branch_attention_reference,
        triton=branch_attention_triton,
        make_inputs=_make_inputs,
        sizes=(16, 32, 64),
        atol=1e-4,
        rtol=1e-4,
        unsupported=_too_long,
    )
)


def branch_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out_weight: torch.Tensor,
    gates: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """``sum_i gates_i * Concat_j(head_ij) W^O_i^T`` over MAT's branches ``i`` and heads ``j`` (module docstring).

    ``backend``: ``"auto"``, ``"triton"`` or ``"reference"`` (default ``REPROBOOK_KERNELS``, else ``"auto"``);
    ``"auto"`` runs the reference for sequences longer than ``MAX_LEN`` tokens.
    """
    out: torch.Tensor = BRANCH_ATTENTION(q, k, v, out_weight, gates, key_padding_mask, causal=causal, backend=backend)
    return out
