"""The rate term of a Gaussian conditional entropy model, fused: quantise, likelihood, lower bounds, -log2, per image.

CompressAI's ``GaussianConditional`` (the scale-hyperprior entropy model of Ballé et al., 2018) prices a latent
``y`` with predicted ``scales`` (sigma) and ``means`` (mu) as::

    y_hat = y + u, u ~ U(-1/2, 1/2)          (training: the additive-noise proxy; ``noise`` holds u)
    y_hat = round(y - mu) + mu                (coding: ``noise=None``; straight-through gradient, d y_hat / d y = 1)
    sigma = max(scales, scale_bound)          (LowerBound, 0.11 in CompressAI)
    d     = |y_hat - mu|
    p     = Phi((1/2 - d) / sigma) - Phi((-1/2 - d) / sigma),  Phi(t) = erfc(-t / sqrt 2) / 2
    p     = max(p, likelihood_bound)          (LowerBound, 1e-9)
    bits[b] = sum over the elements of image b of -log2 p

Both bounds use CompressAI's ``LowerBound`` gradient: it passes where the input is above the bound, or where the
gradient would push it up. In eager PyTorch that is about fifteen element-wise kernels and eight full-size
temporaries kept for the backward pass; the Triton kernel reads ``y, scales, means`` (and ``noise``) once, writes one
partial sum per block, and its backward recomputes everything from the inputs. With ``phi`` the normal density,
``u = (1/2 - d)/sigma``, ``l = (-1/2 - d)/sigma`` and ``G = -g_b / (p ln 2)`` (``g_b`` the gradient of ``bits[b]``)::

    dp/dd = (phi(l) - phi(u)) / sigma,       dp/dsigma = (l phi(l) - u phi(u)) / sigma
    d y = d noise = G' sign(y_hat - mu) dp/dd,   d means = -d y (noise) or -d y (rounding: y_hat moves with y only)

where ``G'`` is ``G`` after the likelihood bound's gate. ``erfc`` has no Triton intrinsic that the interpreter
runs, so the kernel uses the Chebyshev fit of Numerical Recipes (``erfcc``, relative error below 1.2e-7); the
reference uses ``torch.erfc``. Arithmetic is float32 (float64 for float64 inputs); ``bits`` has that dtype.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
SCALE_BOUND = 0.11
LIKELIHOOD_BOUND = 1e-9
_BLOCK = 1024
_LN2 = math.log(2.0)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@jit
def _erfc(x):
    """Numerical Recipes ``erfcc``: ``erfc(x)`` with relative error below 1.2e-7 for every ``x``."""
    z = tl.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                    )
                )
            )
        )
    )
    r = t * tl.exp(poly)
    return tl.where(x >= 0, r, 2.0 - r)


@jit
def _block_likelihood(
    y_ptr,
    s_ptr,
    m_ptr,
    e_ptr,
    per_image,
    scale_bound,
    inv_sqrt2,
    HAS_NOISE: tl.constexpr,
    BLOCK: tl.constexpr,
    ACC: tl.constexpr,
):
    """Load this program's block of image ``program_id(0)`` and return ``(offsets, inside, s, p, d_signed, sigma,
    u, l)``: the unbounded likelihood ``p`` and what the backward needs (forward and backward share it)."""
    image, block = tl.program_id(0), tl.program_id(1)
    within = block * BLOCK + tl.arange(0, BLOCK)
    inside = within < per_image
    offsets = image.to(tl.int64) * per_image + within
    y = tl.load(y_ptr + offsets, mask=inside, other=0.0).to(ACC)
    s = tl.load(s_ptr + offsets, mask=inside, other=1.0).to(ACC)
    m = tl.load(m_ptr + offsets, mask=inside, other=0.0).to(ACC)
    if HAS_NOISE:
        y_hat = y + tl.load(e_ptr + offsets, mask=inside, other=0.0).to(ACC)
    else:
        y_hat = tl.floor(y - m + 0.5) + m
    sigma = tl.maximum(s, scale_bound)
    signed = y_hat - m
    d = tl.abs(signed)
    u = (0.5 - d) / sigma
    low = (-0.5 - d) / sigma
    p = 0.5 * _erfc(-u * inv_sqrt2) - 0.5 * _erfc(-low * inv_sqrt2)
    return offsets, inside, s, p, signed, sigma, u, low


@jit
def _forward_kernel(
    y_ptr,
    s_ptr,
    m_ptr,
    e_ptr,
    partial_ptr,
    per_image,
    blocks,
    scale_bound,
    likelihood_bound,
    inv_sqrt2,
    ln2,
    HAS_NOISE: tl.constexpr,
    BLOCK: tl.constexpr,
    ACC: tl.constexpr,
):
    _, inside, _, p, _, _, _, _ = _block_likelihood(
        y_ptr, s_ptr, m_ptr, e_ptr, per_image, scale_bound, inv_sqrt2, HAS_NOISE, BLOCK, ACC
    )
    bits = -tl.log(tl.maximum(p, likelihood_bound)) / ln2
    tl.store(partial_ptr + tl.program_id(0) * blocks + tl.program_id(1), tl.sum(tl.where(inside, bits, 0.0), axis=0))


@jit
def _backward_kernel(
    g_ptr,
    y_ptr,
    s_ptr,
    m_ptr,
    e_ptr,
    dy_ptr,
    ds_ptr,
    dm_ptr,
    per_image,
    scale_bound,
    likelihood_bound,
    inv_sqrt2,
    inv_sqrt_2pi,
    ln2,
    HAS_NOISE: tl.constexpr,
    BLOCK: tl.constexpr,
    ACC: tl.constexpr,
):
    offsets, inside, s, p, signed, sigma, u, low = _block_likelihood(
        y_ptr, s_ptr, m_ptr, e_ptr, per_image, scale_bound, inv_sqrt2, HAS_NOISE, BLOCK, ACC
    )
    g = tl.load(g_ptr + tl.program_id(0)).to(ACC)
    bounded = tl.maximum(p, likelihood_bound)
    grad_p = -g / (bounded * ln2)
    grad_p = tl.where((p >= likelihood_bound) | (grad_p < 0), grad_p, 0.0)
    phi_u = tl.exp(-0.5 * u * u) * inv_sqrt_2pi
    phi_l = tl.exp(-0.5 * low * low) * inv_sqrt_2pi
    sign = tl.where(signed > 0, 1.0, tl.where(signed < 0, -1.0, 0.0))
    grad_yhat = grad_p * sign * (phi_l - phi_u) / sigma
    grad_sigma = grad_p * (low * phi_l - u * phi_u) / sigma
    grad_s = tl.where((s >= scale_bound) | (grad_sigma < 0), grad_sigma, 0.0)
    tl.store(dy_ptr + offsets, grad_yhat.to(dy_ptr.dtype.element_ty), mask=inside)
    tl.store(ds_ptr + offsets, grad_s.to(ds_ptr.dtype.element_ty), mask=inside)
    tl.store(dm_ptr + offsets, (-grad_yhat).to(dm_ptr.dtype.element_ty), mask=inside)


def _meta(dtype: torch.dtype) -> dict[str, Any]:
    return {"BLOCK": _BLOCK, "ACC": tl.float64 if dtype == torch.float64 else tl.float32, "num_warps": 4}


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _forward(
    y: torch.Tensor, s: torch.Tensor, m: torch.Tensor, e: torch.Tensor | None, sb: float, lb: float
) -> torch.Tensor:
    batch = y.shape[0]
    per_image = y.numel() // batch if batch else 0
    if batch == 0 or per_image == 0:
        return torch.zeros(batch, dtype=_acc_dtype(y.dtype), device=y.device)
    blocks = triton.cdiv(per_image, _BLOCK)
    partial = torch.empty(batch, blocks, dtype=_acc_dtype(y.dtype), device=y.device)
    with torch.cuda.device_of(y):
        _forward_kernel[(batch, blocks)](
            y,
            s,
            m,
            e if e is not None else y,
            partial,
            per_image,
            blocks,
            sb,
            lb,
            _INV_SQRT2,
            _LN2,
            HAS_NOISE=e is not None,
            **_meta(y.dtype),
        )
    return partial.sum(1)


class _TritonRate(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, y: torch.Tensor, s: torch.Tensor, m: torch.Tensor, e: torch.Tensor | None, sb: float, lb: float
    ) -> torch.Tensor:
        ctx.save_for_backward(y, s, m, e if e is not None else y)
        ctx.has_noise, ctx.sb, ctx.lb = e is not None, sb, lb
        return _forward(y, s, m, e, sb, lb)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        y, s, m, e = ctx.saved_tensors
        dy, ds, dm = (torch.empty_like(t) for t in (y, s, m))
        batch = y.shape[0]
        per_image = y.numel() // batch if batch else 0
        if batch and per_image:
            with torch.cuda.device_of(y):
                _backward_kernel[(batch, triton.cdiv(per_image, _BLOCK))](
                    g.contiguous(),
                    y,
                    s,
                    m,
                    e,
                    dy,
                    ds,
                    dm,
                    per_image,
                    ctx.sb,
                    ctx.lb,
                    _INV_SQRT2,
                    _INV_SQRT_2PI,
                    _LN2,
                    HAS_NOISE=ctx.has_noise,
                    **_meta(y.dtype),
                )
        needs = ctx.needs_input_grad
        de = dy if ctx.has_noise and needs[3] else None
        return (dy if needs[0] else None, ds if needs[1] else None, dm if needs[2] else None, de, None, None)


def _check_inputs(
    y: torch.Tensor,
    scales: torch.Tensor,
    means: torch.Tensor,
    noise: torch.Tensor | None,
    scale_bound: float,
    likelihood_bound: float,
) -> None:
    named = [("y", y), ("scales", scales), ("means", means)] + ([("noise", noise)] if noise is not None else [])
    for name, t in named:
        if not isinstance(t, torch.Tensor) or t.dtype not in DTYPES:
            raise TypeError(
                f"gaussian_rate needs {name} to be a tensor of dtype {DTYPES}, got {getattr(t, 'dtype', type(t))}"
            )
    shapes = {name: tuple(t.shape) for name, t in named}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"gaussian_rate needs y, scales, means (and noise) of one shape, got {shapes}")
    if y.ndim < 1:
        raise ValueError(f"gaussian_rate needs a leading batch dimension, got y of shape {tuple(y.shape)}")
    if len({t.dtype for _, t in named}) != 1 or len({t.device for _, t in named}) != 1:
        raise ValueError("y, scales, means (and noise) must share one dtype and one device")
    for name, bound in (("scale_bound", scale_bound), ("likelihood_bound", likelihood_bound)):
        if not (isinstance(bound, (int, float)) and 0 < bound < math.inf):
            raise ValueError(f"{name} must be a positive finite number, got {bound!r}")


class _LowerBound(torch.autograd.Function):
    """``max(x, bound)`` with CompressAI's gradient: pass where ``x >= bound`` or the gradient is negative."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * ((x >= ctx.bound) | (grad < 0)), None


def gaussian_rate_reference(
    y: torch.Tensor,
    scales: torch.Tensor,
    means: torch.Tensor,
    noise: torch.Tensor | None = None,
    scale_bound: float = SCALE_BOUND,
    likelihood_bound: float = LIKELIHOOD_BOUND,
) -> torch.Tensor:
    """Pure-PyTorch rate term, the equations of the module docstring (CompressAI's arithmetic); same signature."""
    _check_inputs(y, scales, means, noise, scale_bound, likelihood_bound)
    acc = _acc_dtype(y.dtype)
    y, scales, means = y.to(acc), scales.to(acc), means.to(acc)
    if noise is not None:
        y_hat = y + noise.to(acc)
    else:
        y_hat = y + (torch.floor(y - means + 0.5) + means - y).detach()  # straight-through rounding
    sigma = _LowerBound.apply(scales, float(scale_bound))
    d = (y_hat - means).abs()
    p = 0.5 * torch.erfc((d - 0.5) / sigma * _INV_SQRT2) - 0.5 * torch.erfc((d + 0.5) / sigma * _INV_SQRT2)
    p = _LowerBound.apply(p, float(likelihood_bound))
    bits: torch.Tensor = (-torch.log2(p)).reshape(y.shape[0], -1).sum(1)
    return bits


def gaussian_rate_triton(
    y: torch.Tensor,
    scales: torch.Tensor,
    means: torch.Tensor,
    noise: torch.Tensor | None = None,
    scale_bound: float = SCALE_BOUND,
    likelihood_bound: float = LIKELIHOOD_BOUND,
) -> torch.Tensor:
    """The Triton kernels behind ``gaussian_rate``, with autograd (CUDA tensors or ``TRITON_INTERPRET=1``)."""
    _check_inputs(y, scales, means, noise, scale_bound, likelihood_bound)
    y, scales, means = (t.contiguous() for t in (y, scales, means))
    noise = noise.contiguous() if noise is not None else None
    tensors = [t for t in (y, scales, means, noise) if t is not None]
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        out: torch.Tensor = _TritonRate.apply(y, scales, means, noise, float(scale_bound), float(likelihood_bound))
        return out
    return _forward(y, scales, means, noise, float(scale_bound), float(likelihood_bound))


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Benchmark inputs: a hyperprior latent ``(16, 192, size, size)`` with scales, means and training noise."""
    shape = (16, 192, size, size)
    y = 4 * torch.randn(shape, device=device, dtype=dtype)
    scales = torch.rand(shape, device=device, dtype=dtype) * 4
    means = torch.randn(shape, device=device, dtype=dtype)
    noise = torch.rand(shape, device=device, dtype=dtype) - 0.5
    return y, scales, means, noise


GAUSSIAN_RATE = register(
    KernelSpec(
        name="gaussian_rate",
        reference=gaussian_rate_reference,
        triton=gaussian_rate_triton,
        make_inputs=_make_inputs,
        sizes=(16, 32, 64),
        atol=1e-4,
        rtol=1e-5,
    )
)


def gaussian_rate(
    y: torch.Tensor,
    scales: torch.Tensor,
    means: torch.Tensor,
    noise: torch.Tensor | None = None,
    scale_bound: float = SCALE_BOUND,
    likelihood_bound: float = LIKELIHOOD_BOUND,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Bits per image of ``y`` under a Gaussian conditional with ``scales`` and ``means``: ``(B,)``.

    ``y, scales, means`` (and ``noise``): one shape ``(B, ...)``, dtype and device. ``noise``: the training
    proxy ``u ~ U(-1/2, 1/2)`` added to ``y``; ``None`` rounds ``y - means`` to integers (straight-through
    gradient). ``scale_bound`` and ``likelihood_bound``: CompressAI's lower bounds (0.11, 1e-9). ``backend``:
    ``"auto"``, ``"triton"`` or ``"reference"`` (default ``REPROBOOK_KERNELS``, else auto: Triton on CUDA).
    """
    out: torch.Tensor = GAUSSIAN_RATE(y, scales, means, noise, scale_bound, likelihood_bound, backend=backend)
    return out
