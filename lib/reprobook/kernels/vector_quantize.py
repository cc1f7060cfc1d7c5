"""Fused vector quantisation: nearest code, straight-through output, per-frame squared error and distance log-sum-exp.

A vector quantiser (VQ-VAE, van den Oord et al. 2017; UWSpeech's converter) maps each frame ``z_n`` (``D`` numbers)
to the nearest of ``K`` codes ``e_k``::

    d_nk   = ||z_n||^2 - 2 z_n . e_k + ||e_k||^2      # squared distances
    q_n    = argmin_k d_nk                              # the token (the lowest index among ties)
    out_n  = z_n + sg[e_q - z_n]                        # value e_q, gradient straight through to z_n
    err_n  = ||z_n - e_q||^2                            # commitment / codebook terms, per frame
    lse_n  = log sum_k exp(-d_nk / tau)                 # normaliser of distance-based logits (for CTC over codes)

Eager PyTorch materialises the ``N x K`` distance matrix (``N`` frames of a batch times ``K`` codes), then runs
argmin, a gather, the error and the log-sum-exp as separate kernels. The Triton kernel gives each program
``BLOCK_N`` frames, walks the codebook in ``BLOCK_K``-code tiles keeping a running minimum, arg-minimum and an
online log-sum-exp (the running-max trick of online softmax), then gathers ``e_q`` and writes ``codes``, ``out``,
``err`` and ``lse``: the distance matrix never exists in memory.

Backward (an autograd Function; PyTorch formulas, not a Triton kernel)::

    d z   = g_out + 2 (z - e_q) g_err - (2 / tau) g_lse (z - sum_k p_nk e_k)
    d e_k = -2 sum_{n: q_n = k} (z_n - e_k) g_err_n + (2 / tau) sum_n g_lse_n p_nk (z_n - e_k)

with ``p_nk = exp(-d_nk / tau - lse_n)``. The ``lse`` part of the backward recomputes ``p`` (``N x K``) and runs
only when ``lse`` receives a gradient. Arithmetic is float32 (float64 for float64 inputs).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

DTYPES = (torch.float32, torch.float64)
_BLOCK_N = 16
_BLOCK_K = 16


def _check_inputs(z: torch.Tensor, codebook: torch.Tensor, temperature: float) -> None:
    for name, t in (("z", z), ("codebook", codebook)):
        if not isinstance(t, torch.Tensor) or t.dtype not in DTYPES or t.ndim != 2:
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"vector_quantize needs {name} to be a 2-D tensor of dtype {DTYPES}, got {got}")
    if z.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"z has {z.shape[1]} features per frame but the codebook's codes have {codebook.shape[1]}: "
            f"z (N, D) and codebook (K, D) must share D"
        )
    if codebook.shape[0] < 2:
        raise ValueError(f"the codebook needs at least 2 codes to choose between, got {codebook.shape[0]}")
    if z.dtype != codebook.dtype or z.device != codebook.device:
        raise ValueError(
            f"z and codebook must share dtype and device, got {z.dtype}/{z.device}, {codebook.dtype}/{codebook.device}"
        )
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(
            f"temperature must be a positive number (logits are -distance / temperature), got {temperature!r}"
        )


def squared_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` matrix ``||z_n||^2 - 2 z_n . e_k + ||e_k||^2`` (the expanded form both backends use)."""
    return (z * z).sum(-1, keepdim=True) - 2 * z @ codebook.T + (codebook * codebook).sum(-1)


def vector_quantize_reference(
    z: torch.Tensor, codebook: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pure-PyTorch quantiser, the equations of the module docstring: ``(codes, out, err, lse)``."""
    _check_inputs(z, codebook, temperature)
    distances = squared_distances(z, codebook)
    codes = distances.argmin(-1)  # the first minimum among ties
    chosen = F.embedding(codes, codebook)  # a backward with a fixed summation order, unlike codebook[codes]
    out = z + (chosen - z).detach()
    err = (z - chosen).pow(2).sum(-1)
    lse = torch.logsumexp(-distances / temperature, -1)
    return codes, out, err, lse


@jit
def _vq_forward_kernel(
    z_ptr, e_ptr, codes_ptr, out_ptr, err_ptr, lse_ptr, inv_tau_ptr, N, K, D,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_D)
    row_in = rows < N
    col_in = cols < D
    z = tl.load(z_ptr + rows[:, None] * D + cols[None, :], mask=row_in[:, None] & col_in[None, :], other=0.0)
    z = z.to(ACC)
    z_norm = tl.sum(z * z, axis=1)
    inv_tau = tl.load(inv_tau_ptr)  # a tensor of the input's dtype: a Python float would arrive as float32
    best = tl.full((BLOCK_N,), float("inf"), ACC)
    best_k = tl.zeros((BLOCK_N,), tl.int64)
    run_max = tl.full((BLOCK_N,), float("-inf"), ACC)
    run_sum = tl.zeros((BLOCK_N,), ACC)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_in = ks < K
        e = tl.load(e_ptr + ks[:, None] * D + cols[None, :], mask=k_in[:, None] & col_in[None, :], other=0.0)
        e = e.to(ACC)
        dot = tl.sum(z[:, None, :] * e[None, :, :], axis=2)  # (BLOCK_N, BLOCK_K), exact in the accumulator type
        dist = z_norm[:, None] - 2.0 * dot + tl.sum(e * e, axis=1)[None, :]
        dist = tl.where(k_in[None, :], dist, float("inf"))
        tile_min = tl.min(dist, axis=1)
        is_min = dist == tile_min[:, None]
        tile_k = tl.min(tl.where(is_min, ks[None, :].to(tl.int64), K + BLOCK_K), axis=1)  # first minimum
        better = tile_min < best  # strict: an earlier tile keeps a tie
        best_k = tl.where(better, tile_k, best_k)
        best = tl.where(better, tile_min, best)
        logits = -dist * inv_tau
        new_max = tl.maximum(run_max, tl.max(logits, axis=1))
        run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(tl.exp(logits - new_max[:, None]), axis=1)
        run_max = new_max
    chosen = tl.load(e_ptr + best_k[:, None] * D + cols[None, :], mask=row_in[:, None] & col_in[None, :], other=0.0)
    chosen = chosen.to(ACC)
    diff = z - chosen
    tl.store(codes_ptr + rows, best_k, mask=row_in)
    out_at = out_ptr + rows[:, None] * D + cols[None, :]
    tl.store(out_at, chosen.to(out_ptr.dtype.element_ty), mask=row_in[:, None] & col_in[None, :])
    tl.store(err_ptr + rows, tl.sum(diff * diff, axis=1).to(err_ptr.dtype.element_ty), mask=row_in)
    tl.store(lse_ptr + rows, (run_max + tl.log(run_sum)).to(lse_ptr.dtype.element_ty), mask=row_in)


def _forward(
    z: torch.Tensor, codebook: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    n, d = z.shape
    codes = torch.empty(n, dtype=torch.int64, device=z.device)
    out, err, lse = torch.empty_like(z), z.new_empty(n), z.new_empty(n)
    if n == 0:
        return codes, out, err, lse
    acc = tl.float64 if z.dtype == torch.float64 else tl.float32
    inv_tau = torch.full((1,), 1.0 / float(temperature), dtype=z.dtype, device=z.device)
    block_d = max(triton.next_power_of_2(d), 16)
    with torch.cuda.device_of(z):
        _vq_forward_kernel[(triton.cdiv(n, _BLOCK_N),)](
            z, codebook, codes, out, err, lse, inv_tau, n, codebook.shape[0], d,
            BLOCK_N=_BLOCK_N, BLOCK_K=_BLOCK_K, BLOCK_D=block_d, ACC=acc,
        )  # fmt: skip
    return codes, out, err, lse


class _TritonVQ(torch.autograd.Function):
    """Triton forward; the backward of the module docstring in PyTorch (straight-through for ``out``)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, codebook: torch.Tensor, temperature: float) -> Any:
        codes, out, err, lse = _forward(z, codebook, temperature)
        ctx.save_for_backward(z, codebook, codes, lse)
        ctx.temperature = temperature
        ctx.mark_non_differentiable(codes)
        ctx.set_materialize_grads(False)
        return codes, out, err, lse

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, _g_codes: Any, g_out: Any, g_err: Any, g_lse: Any) -> tuple[Any, ...]:
        z, codebook, codes, lse = ctx.saved_tensors
        dz, de = torch.zeros_like(z), torch.zeros_like(codebook)
        if g_out is not None:
            dz += g_out
        if g_err is not None:
            residual = 2 * (z - codebook[codes]) * g_err[:, None]
            dz += residual
            de.index_add_(0, codes, -residual)
        if g_lse is not None:
            tau = ctx.temperature
            p = torch.exp(-squared_distances(z, codebook) / tau - lse[:, None]) * g_lse[:, None]  # (N, K)
            dz -= (2 / tau) * (g_lse[:, None] * z - p @ codebook)
            de += (2 / tau) * (p.T @ z - p.sum(0)[:, None] * codebook)
        needs = ctx.needs_input_grad
        return (dz if needs[0] else None, de if needs[1] else None, None)


def vector_quantize_triton(
    z: torch.Tensor, codebook: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Triton kernel behind ``vector_quantize``, with autograd (CUDA tensors or ``TRITON_INTERPRET=1``)."""
    _check_inputs(z, codebook, temperature)
    z, codebook = z.contiguous(), codebook.contiguous()
    if torch.is_grad_enabled() and (z.requires_grad or codebook.requires_grad):
        codes, out, err, lse = _TritonVQ.apply(z, codebook, float(temperature))
        return codes, out, err, lse
    return _forward(z, codebook, float(temperature))


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Benchmark inputs: ``size`` frames of 64 features and a 64-code codebook (UWSpeech's converter)."""
    return torch.randn(size, 64, device=device, dtype=dtype), torch.randn(64, 64, device=device, dtype=dtype)


VECTOR_QUANTIZE = register(
    KernelSpec(
        name="vector_quantize",
        reference=vector_quantize_reference,
        triton=vector_quantize_triton,
        make_inputs=_make_inputs,
        sizes=(4_096, 16_384, 65_536, 262_144),
        atol=1e-3,  # float32 sums of 64 products in another order; float64 tests match to 1e-9
        rtol=1e-3,
    )
)


def vector_quantize(
    z: torch.Tensor, codebook: torch.Tensor, temperature: float = 1.0, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest-code quantisation of ``z`` ``(N, D)`` against ``codebook`` ``(K, D)`` (module docs).

    Returns ``codes`` ``(N,)`` int64 (lowest index among ties), ``out`` ``(N, D)`` (the chosen codes, with the
    straight-through gradient to ``z``), ``err`` ``(N,)`` = ``||z - e_q||^2`` (differentiable in both) and ``lse``
    ``(N,)`` = ``logsumexp_k(-||z - e_k||^2 / temperature)``. ``backend``: ``"auto"``, ``"triton"`` or
    ``"reference"`` (default ``REPROBOOK_KERNELS``, else auto: Triton on CUDA).
    """
    codes, out, err, lse = VECTOR_QUANTIZE(z, codebook, temperature, backend=backend)
    return codes, out, err, lse
