"""Fused length regulator and variance embeddings (FastSpeech 2's variance adaptor output).

For every frame ``t`` of utterance ``b``, with ``i = mel2ph[b, t]`` the 1-based phoneme it belongs to
(0 = padding frame)::

    out[b, t] = h[b, i - 1] + E_p[bucket(pitch[b, t])] + E_e[bucket(energy[b, t])]     (i > 0)
    out[b, t] = 0                                                                       (i = 0)

with ``bucket(v) = #{boundaries < v}`` (``torch.bucketize``, ``right=False``). Eagerly that is a gather (the
length regulator ``H' = LR(H, d)``), two bucketize kernels, two embedding gathers, two adds and a mask, each
writing a ``(B, T, d)`` tensor; ming024's version also loops over the batch in Python. The Triton kernel reads
each input once and writes ``out`` once: one program per (utterance, tile of frames); the boundaries (at most 256)
sit in registers and the bucket index is a comparison count, so there is no data-dependent loop.

Backward: ``dh[b, i - 1] = sum_{t: mel2ph[b, t] = i} dout[b, t]`` (a segment sum over the phoneme's frames) and
``dE_p[k] = sum_{b, t: bucket = k} dout[b, t]`` (likewise ``dE_e``), both scattered with atomic adds from the same
tiles. Pitch, energy and ``mel2ph`` get no gradient (bucketing is piecewise constant).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

DTYPES = (torch.float32, torch.float64)
_BLOCK_T = 16
_BLOCK_D = 64
_MAX_BOUNDARIES = 1024


@jit
def _buckets(v, bins_ptr, n_bins, NB: tl.constexpr):
    """``#{boundaries < v}`` for a vector ``v``: boundaries padded with +inf to ``NB``."""
    k = tl.arange(0, NB)
    bounds = tl.load(bins_ptr + k, mask=k < n_bins, other=float("inf"))
    return tl.sum((bounds[None, :] < v[:, None]).to(tl.int32), axis=1)


@jit
def _frame_tile(
    mel2ph_ptr,
    p_ptr,
    e_ptr,
    pbins_ptr,
    ebins_ptr,
    N,
    T,
    n_pbins,
    n_ebins,
    NBP: tl.constexpr,
    NBE: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    """This program's tile of frames: utterance ``b``, frames ``t``, which are inside ``T`` and which belong to a
    phoneme, their pitch and energy buckets, and the row of ``h`` (flattened ``(B * N, d)``) each one reads."""
    b = tl.program_id(0).to(tl.int64)
    t = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    inside = t < T
    idx = tl.load(mel2ph_ptr + b * T + t, mask=inside, other=0).to(tl.int64)
    valid = inside & (idx > 0)
    pb = _buckets(tl.load(p_ptr + b * T + t, mask=inside, other=0.0), pbins_ptr, n_pbins, NBP).to(tl.int64)
    eb = _buckets(tl.load(e_ptr + b * T + t, mask=inside, other=0.0), ebins_ptr, n_ebins, NBE).to(tl.int64)
    return b, t, inside, valid, pb, eb, b * N + idx - 1


@jit
def _forward_kernel(
    h_ptr,
    mel2ph_ptr,
    p_ptr,
    e_ptr,
    pbins_ptr,
    ebins_ptr,
    ptab_ptr,
    etab_ptr,
    out_ptr,
    N,
    T,
    D,
    n_pbins,
    n_ebins,
    NBP: tl.constexpr,
    NBE: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
    D_CHUNKS: tl.constexpr,
):
    b, t, inside, valid, pb, eb, row = _frame_tile(
        mel2ph_ptr, p_ptr, e_ptr, pbins_ptr, ebins_ptr, N, T, n_pbins, n_ebins, NBP, NBE, BLOCK_T
    )
    for chunk in tl.static_range(D_CHUNKS):
        cols = chunk * BLOCK_D + tl.arange(0, BLOCK_D)
        m = valid[:, None] & (cols < D)[None, :]
        x = tl.load(h_ptr + row[:, None] * D + cols[None, :], mask=m, other=0.0)
        x += tl.load(ptab_ptr + pb[:, None] * D + cols[None, :], mask=m, other=0.0)
        x += tl.load(etab_ptr + eb[:, None] * D + cols[None, :], mask=m, other=0.0)
        store = inside[:, None] & (cols < D)[None, :]
        tl.store(out_ptr + (b * T + t)[:, None] * D + cols[None, :], x, mask=store)


@jit
def _backward_kernel(
    dout_ptr,
    mel2ph_ptr,
    p_ptr,
    e_ptr,
    pbins_ptr,
    ebins_ptr,
    dh_ptr,
    dptab_ptr,
    detab_ptr,
    N,
    T,
    D,
    n_pbins,
    n_ebins,
    NBP: tl.constexpr,
    NBE: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
    D_CHUNKS: tl.constexpr,
    GRAD_H: tl.constexpr,
    GRAD_P: tl.constexpr,
    GRAD_E: tl.constexpr,
):
    b, t, _inside, valid, pb, eb, row = _frame_tile(
        mel2ph_ptr, p_ptr, e_ptr, pbins_ptr, ebins_ptr, N, T, n_pbins, n_ebins, NBP, NBE, BLOCK_T
    )
    for chunk in tl.static_range(D_CHUNKS):
        cols = chunk * BLOCK_D + tl.arange(0, BLOCK_D)
        m = valid[:, None] & (cols < D)[None, :]
        g = tl.load(dout_ptr + (b * T + t)[:, None] * D + cols[None, :], mask=m, other=0.0)
        if GRAD_H:
            tl.atomic_add(dh_ptr + row[:, None] * D + cols[None, :], g, mask=m)
        if GRAD_P:
            tl.atomic_add(dptab_ptr + pb[:, None] * D + cols[None, :], g, mask=m)
        if GRAD_E:
            tl.atomic_add(detab_ptr + eb[:, None] * D + cols[None, :], g, mask=m)


def _meta(d: int, n_pbins: int, n_ebins: int) -> dict[str, Any]:
    return {
        "NBP": triton.next_power_of_2(max(n_pbins, 2)),
        "NBE": triton.next_power_of_2(max(n_ebins, 2)),
        "BLOCK_T": _BLOCK_T,
        "BLOCK_D": _BLOCK_D,
        "D_CHUNKS": max(1, triton.cdiv(d, _BLOCK_D)),
    }


class _TritonVarianceRegulate(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        h: torch.Tensor,
        mel2ph: torch.Tensor,
        pitch: torch.Tensor,
        energy: torch.Tensor,
        pitch_bins: torch.Tensor,
        energy_bins: torch.Tensor,
        pitch_table: torch.Tensor,
        energy_table: torch.Tensor,
    ) -> torch.Tensor:
        b, n, d = h.shape
        t = mel2ph.shape[1]
        out = torch.empty(b, t, d, device=h.device, dtype=h.dtype)
        if out.numel():
            meta = _meta(d, pitch_bins.numel(), energy_bins.numel())
            with torch.cuda.device_of(h):
                _forward_kernel[(b, triton.cdiv(t, _BLOCK_T))](
                    h,
                    mel2ph,
                    pitch,
                    energy,
                    pitch_bins,
                    energy_bins,
                    pitch_table,
                    energy_table,
                    out,
                    n,
                    t,
                    d,
                    pitch_bins.numel(),
                    energy_bins.numel(),
                    **meta,
                )
        ctx.save_for_backward(mel2ph, pitch, energy, pitch_bins, energy_bins)
        ctx.shapes = (h.shape, pitch_table.shape, energy_table.shape)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        mel2ph, pitch, energy, pitch_bins, energy_bins = ctx.saved_tensors
        h_shape, p_shape, e_shape = ctx.shapes
        needs = ctx.needs_input_grad
        dout = dout.contiguous()
        dh = torch.zeros(h_shape, device=dout.device, dtype=dout.dtype)
        dp = torch.zeros(p_shape, device=dout.device, dtype=dout.dtype)
        de = torch.zeros(e_shape, device=dout.device, dtype=dout.dtype)
        b, t, d = dout.shape
        if dout.numel() and (needs[0] or needs[6] or needs[7]):
            meta = _meta(d, pitch_bins.numel(), energy_bins.numel())
            with torch.cuda.device_of(dout):
                _backward_kernel[(b, triton.cdiv(t, _BLOCK_T))](
                    dout,
                    mel2ph,
                    pitch,
                    energy,
                    pitch_bins,
                    energy_bins,
                    dh,
                    dp,
                    de,
                    h_shape[1],
                    t,
                    d,
                    pitch_bins.numel(),
                    energy_bins.numel(),
                    GRAD_H=needs[0],
                    GRAD_P=needs[6],
                    GRAD_E=needs[7],
                    **meta,
                )
        return (
            dh if needs[0] else None,
            None,
            None,
            None,
            None,
            None,
            dp if needs[6] else None,
            de if needs[7] else None,
        )


def _check(
    h: torch.Tensor,
    mel2ph: torch.Tensor,
    pitch: torch.Tensor,
    energy: torch.Tensor,
    pitch_bins: torch.Tensor,
    energy_bins: torch.Tensor,
    pitch_table: torch.Tensor,
    energy_table: torch.Tensor,
) -> None:
    if h.ndim != 3:
        raise ValueError(f"h must be (B, N, d), got shape {tuple(h.shape)}")
    if h.dtype not in DTYPES or pitch_table.dtype != h.dtype or energy_table.dtype != h.dtype:
        raise TypeError(
            f"h and the embedding tables must share a dtype in {DTYPES}, got {h.dtype}, "
            f"{pitch_table.dtype}, {energy_table.dtype}"
        )
    b, n, d = h.shape
    if mel2ph.ndim != 2 or mel2ph.shape[0] != b or mel2ph.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"mel2ph must be an integer (B, T) tensor with B = {b}, got {mel2ph.dtype} {tuple(mel2ph.shape)}"
        )
    if mel2ph.numel() and (int(mel2ph.min()) < 0 or int(mel2ph.max()) > n):
        raise ValueError(f"mel2ph must hold 1-based phoneme indices in [0, {n}] (0 = padding frame)")
    for name, v in (("pitch", pitch), ("energy", energy)):
        if v.shape != mel2ph.shape:
            raise ValueError(f"{name} must be frame-level like mel2ph {tuple(mel2ph.shape)}, got {tuple(v.shape)}")
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    for name, bins, table in (("pitch", pitch_bins, pitch_table), ("energy", energy_bins, energy_table)):
        if bins.ndim != 1 or not 1 <= bins.numel() <= _MAX_BOUNDARIES:
            raise ValueError(f"{name}_bins must be 1-D with 1 to {_MAX_BOUNDARIES} boundaries, got {tuple(bins.shape)}")
        if table.shape != (bins.numel() + 1, d):
            raise ValueError(
                f"{name}_table must be (len({name}_bins) + 1, d) = ({bins.numel() + 1}, {d}), got {tuple(table.shape)}"
            )


def variance_regulate_reference(
    h: torch.Tensor,
    mel2ph: torch.Tensor,
    pitch: torch.Tensor,
    energy: torch.Tensor,
    pitch_bins: torch.Tensor,
    energy_bins: torch.Tensor,
    pitch_table: torch.Tensor,
    energy_table: torch.Tensor,
) -> torch.Tensor:
    """Pure PyTorch: gather, bucketize, two embedding lookups, add, zero the padding frames. ``-> (B, T, d)``."""
    _check(h, mel2ph, pitch, energy, pitch_bins, energy_bins, pitch_table, energy_table)
    mel2ph = mel2ph.long()
    padded = torch.nn.functional.pad(h, (0, 0, 1, 0))
    x = torch.gather(padded, 1, mel2ph[..., None].expand(-1, -1, h.shape[-1]))
    x = x + F.embedding(torch.bucketize(pitch.contiguous(), pitch_bins.contiguous()), pitch_table)
    x = x + F.embedding(torch.bucketize(energy.contiguous(), energy_bins.contiguous()), energy_table)
    return x * (mel2ph > 0)[..., None].to(x.dtype)


def variance_regulate_triton(
    h: torch.Tensor,
    mel2ph: torch.Tensor,
    pitch: torch.Tensor,
    energy: torch.Tensor,
    pitch_bins: torch.Tensor,
    energy_bins: torch.Tensor,
    pitch_table: torch.Tensor,
    energy_table: torch.Tensor,
) -> torch.Tensor:
    """The Triton kernels, with autograd for ``h`` and both tables (CUDA tensors or ``TRITON_INTERPRET=1``)."""
    _check(h, mel2ph, pitch, energy, pitch_bins, energy_bins, pitch_table, energy_table)
    contiguous = [
        t.contiguous()
        for t in (
            h,
            mel2ph,
            pitch.to(h.dtype),
            energy.to(h.dtype),
            pitch_bins.to(h.dtype),
            energy_bins.to(h.dtype),
            pitch_table,
            energy_table,
        )
    ]
    out: torch.Tensor = _TritonVarianceRegulate.apply(*contiguous)
    return out


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Benchmark inputs: 16 utterances of ``size`` frames, ``size // 8`` phonemes, d = 256, 255 boundaries."""
    b, n, d = 16, max(1, size // 8), 256
    h = torch.randn(b, n, d, device=device, dtype=dtype)
    mel2ph = (torch.arange(size, device=device) // 8 + 1).clamp(max=n).expand(b, size).contiguous()
    pitch = 50 + 550 * torch.rand(b, size, device=device, dtype=dtype)
    energy = torch.randn(b, size, device=device, dtype=dtype)
    pbins = torch.exp(torch.linspace(3.9, 6.4, 255, device=device, dtype=dtype))
    ebins = torch.linspace(-3, 3, 255, device=device, dtype=dtype)
    tables = [torch.randn(256, d, device=device, dtype=dtype) for _ in range(2)]
    return h, mel2ph, pitch, energy, pbins, ebins, *tables


LENGTH_REGULATOR = register(
    KernelSpec(
        name="length_regulator",
        reference=variance_regulate_reference,
        triton=variance_regulate_triton,
        make_inputs=_make_inputs,
        sizes=(256, 512, 1024, 2048),
    )
)


def variance_regulate(
    h: torch.Tensor,
    mel2ph: torch.Tensor,
    pitch: torch.Tensor,
    energy: torch.Tensor,
    pitch_bins: torch.Tensor,
    energy_bins: torch.Tensor,
    pitch_table: torch.Tensor,
    energy_table: torch.Tensor,
    backend: str | None = None,
) -> torch.Tensor:
    """``LR(H, d) + E_p[bucket(pitch)] + E_e[bucket(energy)]``, zero at padding: ``(B, N, d) -> (B, T, d)``.

    ``mel2ph (B, T)``: 1-based phoneme index per frame (0 = padding); ``pitch``/``energy (B, T)``; ``*_bins``:
    sorted boundaries; ``*_table (len(bins) + 1, d)``. Triton on CUDA, the reference elsewhere (module docs of
    :mod:`reprobook.kernels.registry`).
    """
    out: torch.Tensor = LENGTH_REGULATOR(
        h, mel2ph, pitch, energy, pitch_bins, energy_bins, pitch_table, energy_table, backend=backend
    )
    return out
