"""Mix-attention (CoMMA, Ren et al. 2020) as one flash-style call that also returns the target attention mass.

CoMMA's decoder replaces self- and encoder-decoder attention by one attention whose queries are the target states
and whose keys and values are the source states **and** the target states, in one softmax::

    alpha_ij = softmax_j(q_i . k_j / sqrt(d)),  j in src ∪ tgt,     out_i = sum_j alpha_ij v_j
    mass_i   = sum_{j in tgt} alpha_ij                               (the share of attention on the target)

The reference concatenates ``[K_src; K_tgt]`` and materialises the ``N x (M + N)`` attention matrix. The Triton
path streams the two key/value ranges one block of keys at a time (never concatenating them), keeps FlashAttention's
online softmax (running max ``m``, normaliser ``l``, output accumulator) and a second accumulator ``t`` that sums
the probabilities of target keys only, i.e. an indicator column (1 for target keys, 0 for source keys) appended to
V. At the end ``out = acc / l`` and ``mass = t / l``: the density ratio of CoMMA comes out of the forward pass with
no attention matrix in memory. The forward saves the log-sum-exp; the backward is two more kernels that recompute
the probabilities from it (``dQ`` per query block over both ranges; ``dK, dV`` per key block of one range).

``mass`` is an analysis output: it carries no gradient in either implementation.

Shapes: ``q: (B, H, N, d)``, ``k_src, v_src: (B, H, M, d)``, ``k_tgt, v_tgt: (B, H, N_k, d)``, ``src_padding:
(B, M)`` and ``tgt_padding: (B, N_k)`` bool, True at padding. Returns ``out (B, H, N, d)`` and ``mass (B, H, N)``
(float32). Every query needs one visible key at least (else its row is 0/0 = NaN in both implementations).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@jit
def _rows(ptr, bh, rows, length, d, rd):
    """Rows ``rows`` of head ``bh``'s ``(length, d)`` matrix as float32, with their offsets and mask."""
    mask = (rows < length)[:, None] & (rd < d)[None, :]
    offsets = bh * length * d + rows[:, None] * d + rd[None, :]
    return tl.load(ptr + offsets, mask=mask, other=0.0).to(tl.float32), offsets, mask


@jit
def _tile(ptr, bh, rows, length, d, rd):
    """The float32 tile of :func:`_rows` alone (no throw-away names: the compiler types a loop's variables, and a
    name bound to tiles of two block sizes, before and inside a loop, does not compile)."""
    tile, _, _ = _rows(ptr, bh, rows, length, d, rd)
    return tile


@jit
def _row_stats(lse_ptr, delta_ptr, bh, rq, n_q):
    """The saved log-sum-exp and ``rowsum(dO * O)`` of queries ``rq`` of head ``bh``."""
    lse = tl.load(lse_ptr + bh * n_q + rq, mask=rq < n_q, other=0.0)
    delta = tl.load(delta_ptr + bh * n_q + rq, mask=rq < n_q, other=0.0)
    return lse, delta


@jit
def _visible(pad_ptr, batch, rk, length, HAS_PAD: tl.constexpr):
    valid = rk < length
    if HAS_PAD:
        pad = tl.load(pad_ptr + batch * length + rk, mask=rk < length, other=1)
        valid = valid & (pad == 0)
    return valid


@jit
def _stream(
    q,
    k_ptr,
    v_ptr,
    pad_ptr,
    bh,
    batch,
    length,
    d,
    scale,
    m_i,
    l_i,
    t_i,
    acc,
    rd,
    IS_TGT: tl.constexpr,
    HAS_PAD: tl.constexpr,
    BK: tl.constexpr,
):
    """Online softmax over one key/value range, ``BK`` keys at a time; ``t_i`` sums target probabilities."""
    for start in range(0, length, BK):
        rk = start + tl.arange(0, BK)
        k = _tile(k_ptr, bh, rk, length, d, rd)
        v = _tile(v_ptr, bh, rk, length, d, rd)
        valid = _visible(pad_ptr, batch, rk, length, HAS_PAD)
        s = tl.where(valid[None, :], tl.dot(q, tl.trans(k), input_precision="ieee") * scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        t_i = t_i * alpha
        if IS_TGT:
            t_i = t_i + tl.sum(p, 1)  # the indicator column: 1 for target keys
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        m_i = m_new
    return m_i, l_i, t_i, acc


@jit
def _forward_kernel(
    q_ptr,
    ks_ptr,
    vs_ptr,
    kt_ptr,
    vt_ptr,
    spad_ptr,
    tpad_ptr,
    o_ptr,
    mass_ptr,
    lse_ptr,
    n_q,
    m_src,
    n_tgt,
    d,
    heads,
    scale,
    HAS_SPAD: tl.constexpr,
    HAS_TPAD: tl.constexpr,
    BQ: tl.constexpr,
    BK: tl.constexpr,
    BD: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)
    batch = bh // heads
    rq = tl.program_id(1) * BQ + tl.arange(0, BQ)
    rd = tl.arange(0, BD)
    q, q_off, q_mask = _rows(q_ptr, bh, rq, n_q, d, rd)
    m_i = tl.full((BQ,), float("-inf"), tl.float32)
    l_i = tl.zeros((BQ,), tl.float32)
    t_i = tl.zeros((BQ,), tl.float32)
    acc = tl.zeros((BQ, BD), tl.float32)
    m_i, l_i, t_i, acc = _stream(
        q, ks_ptr, vs_ptr, spad_ptr, bh, batch, m_src, d, scale, m_i, l_i, t_i, acc, rd, False, HAS_SPAD, BK
    )
    m_i, l_i, t_i, acc = _stream(
        q, kt_ptr, vt_ptr, tpad_ptr, bh, batch, n_tgt, d, scale, m_i, l_i, t_i, acc, rd, True, HAS_TPAD, BK
    )
    tl.store(o_ptr + q_off, (acc / l_i[:, None]).to(o_ptr.dtype.element_ty), mask=q_mask)
    tl.store(mass_ptr + bh * n_q + rq, t_i / l_i, mask=rq < n_q)
    tl.store(lse_ptr + bh * n_q + rq, m_i + tl.log(l_i), mask=rq < n_q)


@jit
def _dq_range(
    q,
    do,
    lse,
    delta,
    k_ptr,
    v_ptr,
    pad_ptr,
    bh,
    batch,
    length,
    d,
    scale,
    dq,
    rd,
    HAS_PAD: tl.constexpr,
    BK: tl.constexpr,
):
    for start in range(0, length, BK):
        rk = start + tl.arange(0, BK)
        k = _tile(k_ptr, bh, rk, length, d, rd)
        v = _tile(v_ptr, bh, rk, length, d, rd)
        valid = _visible(pad_ptr, batch, rk, length, HAS_PAD)
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        p = tl.where(valid[None, :], tl.exp(s - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision="ieee")
        ds = p * (dp - delta[:, None])  # softmax backward: dS = P * (dP - rowsum(dO * O))
        dq += tl.dot(ds, k, input_precision="ieee") * scale
    return dq


@jit
def _dq_kernel(
    q_ptr,
    ks_ptr,
    vs_ptr,
    kt_ptr,
    vt_ptr,
    spad_ptr,
    tpad_ptr,
    do_ptr,
    lse_ptr,
    delta_ptr,
    dq_ptr,
    n_q,
    m_src,
    n_tgt,
    d,
    heads,
    scale,
    HAS_SPAD: tl.constexpr,
    HAS_TPAD: tl.constexpr,
    BQ: tl.constexpr,
    BK: tl.constexpr,
    BD: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)
    batch = bh // heads
    rq = tl.program_id(1) * BQ + tl.arange(0, BQ)
    rd = tl.arange(0, BD)
    q, q_off, q_mask = _rows(q_ptr, bh, rq, n_q, d, rd)
    do = _tile(do_ptr, bh, rq, n_q, d, rd)
    lse, delta = _row_stats(lse_ptr, delta_ptr, bh, rq, n_q)
    dq = tl.zeros((BQ, BD), tl.float32)
    dq = _dq_range(q, do, lse, delta, ks_ptr, vs_ptr, spad_ptr, bh, batch, m_src, d, scale, dq, rd, HAS_SPAD, BK)
    dq = _dq_range(q, do, lse, delta, kt_ptr, vt_ptr, tpad_ptr, bh, batch, n_tgt, d, scale, dq, rd, HAS_TPAD, BK)
    tl.store(dq_ptr + q_off, dq.to(dq_ptr.dtype.element_ty), mask=q_mask)


@jit
def _dkdv_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    pad_ptr,
    do_ptr,
    lse_ptr,
    delta_ptr,
    dk_ptr,
    dv_ptr,
    n_q,
    length,
    d,
    heads,
    scale,
    HAS_PAD: tl.constexpr,
    BQ: tl.constexpr,
    BK: tl.constexpr,
    BD: tl.constexpr,
):
    """``dK, dV`` of one block of keys of one range (source or target), looping over every query block."""
    bh = tl.program_id(0).to(tl.int64)
    batch = bh // heads
    rk = tl.program_id(1) * BK + tl.arange(0, BK)
    rd = tl.arange(0, BD)
    k, k_off, kv_mask = _rows(k_ptr, bh, rk, length, d, rd)
    v = _tile(v_ptr, bh, rk, length, d, rd)
    valid = _visible(pad_ptr, batch, rk, length, HAS_PAD)
    dk = tl.zeros((BK, BD), tl.float32)
    dv = tl.zeros((BK, BD), tl.float32)
    for start in range(0, n_q, BQ):
        rq = start + tl.arange(0, BQ)
        q = _tile(q_ptr, bh, rq, n_q, d, rd)
        do = _tile(do_ptr, bh, rq, n_q, d, rd)
        lse, delta = _row_stats(lse_ptr, delta_ptr, bh, rq, n_q)
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        p = tl.where(valid[None, :] & (rq < n_q)[:, None], tl.exp(s - lse[:, None]), 0.0)
        dv += tl.dot(tl.trans(p), do, input_precision="ieee")
        dp = tl.dot(do, tl.trans(v), input_precision="ieee")
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds), q, input_precision="ieee") * scale
    tl.store(dk_ptr + k_off, dk.to(dk_ptr.dtype.element_ty), mask=kv_mask)
    tl.store(dv_ptr + k_off, dv.to(dv_ptr.dtype.element_ty), mask=kv_mask)


def _block(n: int) -> int:
    return max(16, min(64, triton.next_power_of_2(max(n, 1))))


class _MixAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        ks: torch.Tensor,
        vs: torch.Tensor,
        kt: torch.Tensor,
        vt: torch.Tensor,
        spad: torch.Tensor | None,
        tpad: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, h, n_q, d = q.shape
        m_src, n_tgt = ks.shape[2], kt.shape[2]
        o = torch.zeros_like(q)
        mass = torch.zeros(b, h, n_q, dtype=torch.float32, device=q.device)
        lse = torch.zeros(b, h, n_q, dtype=torch.float32, device=q.device)
        blocks = {"BQ": _block(n_q), "BK": _block(max(m_src, n_tgt)), "BD": max(16, triton.next_power_of_2(d))}
        if q.numel():
            with torch.cuda.device_of(q):
                _forward_kernel[(b * h, triton.cdiv(n_q, blocks["BQ"]))](
                    q, ks, vs, kt, vt, q if spad is None else spad, q if tpad is None else tpad, o, mass, lse,
                    n_q, m_src, n_tgt, d, h, 1.0 / math.sqrt(d),
                    HAS_SPAD=spad is not None, HAS_TPAD=tpad is not None, **blocks,
                )  # fmt: skip
        ctx.save_for_backward(q, ks, vs, kt, vt, spad, tpad, o, lse)
        ctx.blocks = blocks
        ctx.mark_non_differentiable(mass)
        return o, mass

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, do: torch.Tensor, _dmass: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        q, ks, vs, kt, vt, spad, tpad, o, lse = ctx.saved_tensors
        b, h, n_q, d = q.shape
        blocks, scale = ctx.blocks, 1.0 / math.sqrt(d)
        do = do.contiguous()
        delta = (do.float() * o.float()).sum(-1).contiguous()
        dq, dks, dvs, dkt, dvt = (torch.zeros_like(x) for x in (q, ks, vs, kt, vt))
        if q.numel():
            with torch.cuda.device_of(q):
                _dq_kernel[(b * h, triton.cdiv(n_q, blocks["BQ"]))](
                    q, ks, vs, kt, vt, q if spad is None else spad, q if tpad is None else tpad, do, lse, delta, dq,
                    n_q, ks.shape[2], kt.shape[2], d, h, scale,
                    HAS_SPAD=spad is not None, HAS_TPAD=tpad is not None, **blocks,
                )  # fmt: skip
                for k, v, pad, dk, dv in ((ks, vs, spad, dks, dvs), (kt, vt, tpad, dkt, dvt)):
                    if k.shape[2]:
                        _dkdv_kernel[(b * h, triton.cdiv(k.shape[2], blocks["BK"]))](
                            q, k, v, q if pad is None else pad, do, lse, delta, dk, dv,
                            n_q, k.shape[2], d, h, scale, HAS_PAD=pad is not None, **blocks,
                        )  # fmt: skip
        return dq, dks, dvs, dkt, dvt, None, None


def _check_inputs(
    q: torch.Tensor,
    k_src: torch.Tensor,
    v_src: torch.Tensor,
    k_tgt: torch.Tensor,
    v_tgt: torch.Tensor,
    src_padding: torch.Tensor | None,
    tgt_padding: torch.Tensor | None,
) -> None:
    named = (("q", q), ("k_src", k_src), ("v_src", v_src), ("k_tgt", k_tgt), ("v_tgt", v_tgt))
    for name, t in named:
        if not isinstance(t, torch.Tensor) or t.dtype not in DTYPES or t.ndim != 4:
            raise TypeError(
                f"mix_attention needs {name} to be a (B, H, T, d) float tensor, got {getattr(t, 'shape', t)}"
            )
    if k_src.shape != v_src.shape or k_tgt.shape != v_tgt.shape:
        raise ValueError("k_src/v_src and k_tgt/v_tgt must have the same shapes")
    for name, t in named[1:]:
        if t.shape[:2] != q.shape[:2] or t.shape[3] != q.shape[3]:
            raise ValueError(f"{name} {tuple(t.shape)} and q {tuple(q.shape)} disagree on B, H or d")
    b = q.shape[0]
    for name, pad, length in (
        ("src_padding", src_padding, k_src.shape[2]),
        ("tgt_padding", tgt_padding, k_tgt.shape[2]),
    ):
        if pad is not None and (pad.dtype != torch.bool or pad.shape != (b, length)):
            raise ValueError(
                f"{name} must be a bool (B, T) = ({b}, {length}) tensor, True at padding, "
                f"got {pad.dtype} {tuple(pad.shape)}"
            )


def mix_attention_weights(
    q: torch.Tensor,
    k_src: torch.Tensor,
    k_tgt: torch.Tensor,
    src_padding: torch.Tensor | None = None,
    tgt_padding: torch.Tensor | None = None,
) -> torch.Tensor:
    """The attention matrix ``alpha (B, H, N, M + N_k)``: source keys first, then target keys (for plots and the
    alignment loss; differentiable)."""
    scores = torch.cat([q @ k_src.transpose(-1, -2), q @ k_tgt.transpose(-1, -2)], dim=-1) / math.sqrt(q.shape[-1])
    b = q.shape[0]
    pads = [
        torch.zeros(b, t.shape[2], dtype=torch.bool, device=q.device) if p is None else p
        for p, t in ((src_padding, k_src), (tgt_padding, k_tgt))
    ]
    scores = scores.masked_fill(torch.cat(pads, dim=1)[:, None, None, :], float("-inf"))
    return torch.softmax(scores.float(), dim=-1)


def mix_attention_reference(
    q: torch.Tensor,
    k_src: torch.Tensor,
    v_src: torch.Tensor,
    k_tgt: torch.Tensor,
    v_tgt: torch.Tensor,
    src_padding: torch.Tensor | None = None,
    tgt_padding: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate ``[K_src; K_tgt]``, one softmax, ``alpha @ [V_src; V_tgt]``; ``mass`` sums the target columns."""
    _check_inputs(q, k_src, v_src, k_tgt, v_tgt, src_padding, tgt_padding)
    alpha = mix_attention_weights(q, k_src, k_tgt, src_padding, tgt_padding)
    out = alpha @ torch.cat([v_src, v_tgt], dim=2).float()
    return out.to(q.dtype), alpha[..., k_src.shape[2] :].sum(-1).detach()


def mix_attention_triton(
    q: torch.Tensor,
    k_src: torch.Tensor,
    v_src: torch.Tensor,
    k_tgt: torch.Tensor,
    v_tgt: torch.Tensor,
    src_padding: torch.Tensor | None = None,
    tgt_padding: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two key/value ranges streamed with an online softmax and the target-mass accumulator; autograd included."""
    _check_inputs(q, k_src, v_src, k_tgt, v_tgt, src_padding, tgt_padding)
    pads = [None if p is None else p.to(torch.int8).contiguous() for p in (src_padding, tgt_padding)]
    out, mass = _MixAttention.apply(
        q.contiguous(), k_src.contiguous(), v_src.contiguous(), k_tgt.contiguous(), v_tgt.contiguous(), *pads
    )
    return out, mass


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[Any, ...]:
    """Benchmark inputs: 32 sequences, 4 heads of d = 32, ``size`` source and ``size`` target positions."""
    q, ks, vs, kt, vt = (torch.randn(32, 4, size, 32, device=device, dtype=dtype) for _ in range(5))
    return q, ks, vs, kt, vt


MIX_ATTENTION = register(
    KernelSpec(
        name="mix_attention",
        reference=mix_attention_reference,
        triton=mix_attention_triton,
        make_inputs=_make_inputs,
        sizes=(32, 128, 512, 1024),
        atol=1e-4,
        rtol=1e-4,
    )
)


def mix_attention(
    q: torch.Tensor,
    k_src: torch.Tensor,
    v_src: torch.Tensor,
    k_tgt: torch.Tensor,
    v_tgt: torch.Tensor,
    src_padding: torch.Tensor | None = None,
    tgt_padding: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, mass)`` of mix-attention (module docstring); ``backend``: ``"auto"``, ``"triton"`` or ``"reference"``."""
    result: tuple[torch.Tensor, torch.Tensor] = MIX_ATTENTION(
        q, k_src, v_src, k_tgt, v_tgt, src_padding, tgt_padding, backend=backend
    )
    return result
