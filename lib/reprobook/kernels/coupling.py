"""Fused epilogue of the affine coupling block (IRN's InvBlock): the clamped scale, the affine map, its inverse.

The coupling block of :mod:`reprobook.nn.invertible` computes, with subnet outputs ``h = H(y1)`` and
``g = G(y1)`` and a clamp ``c``::

    s  = c * (2 * sigmoid(h) - 1)          # scale exponent, in (-c, c)
    y2 = x2 * exp(s) + g                   # forward
    x2 = (y2 - g) * exp(-s)                # inverse (reverse=True)

In eager PyTorch that is seven element-wise kernels (sigmoid, *2, -1, *c, exp, *, +), each reading and
writing a full feature map, and autograd keeps ``sigmoid(h)`` and ``exp(s)`` alive for the backward pass.
The Triton kernel reads ``x2``, ``h`` and ``g`` once and writes the result once. Its backward recomputes
``sigmoid(h)`` and ``exp(s)`` from ``h`` instead of storing them; it keeps only ``h`` and one of the two maps
(the input ``x2`` going forward, the output ``x2`` going in reverse). With ``u = out``'s incoming gradient and
``s' = 2 c sigmoid(h) (1 - sigmoid(h))``::

    forward:  d x2 = u * exp(s),    d g = u,                 d h = u * x2 * exp(s) * s'
    reverse:  d y2 = u * exp(-s),   d g = -u * exp(-s),      d h = -u * x2 * s'        (x2 = the output)

One program handles ``BLOCK`` consecutive elements of the flattened (contiguous) tensors; arithmetic is
float32 (float64 for float64 inputs) and the result has the inputs' dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_BLOCK = 1024


@jit
def _scale_exponent(h, clamp):
    """``s = c (2 sigmoid(h) - 1)`` and ``ds/dh = 2 c sigmoid(h) (1 - sigmoid(h))`` (float32 or float64)."""
    sig = 1.0 / (1.0 + tl.exp(-h))  # exp(-h) = inf for very negative h gives sig = 0, as it should
    return clamp * (2.0 * sig - 1.0), 2.0 * clamp * sig * (1.0 - sig)


@jit
def _forward_kernel(
    x_ptr, h_ptr, g_ptr, out_ptr, n, clamp, REVERSE: tl.constexpr, BLOCK: tl.constexpr, ACC: tl.constexpr
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    x = tl.load(x_ptr + offsets, mask=inside, other=0.0).to(ACC)
    h = tl.load(h_ptr + offsets, mask=inside, other=0.0).to(ACC)
    g = tl.load(g_ptr + offsets, mask=inside, other=0.0).to(ACC)
    s, _ = _scale_exponent(h, clamp)
    if REVERSE:
        out = (x - g) * tl.exp(-s)
    else:
        out = x * tl.exp(s) + g
    tl.store(out_ptr + offsets, out.to(out_ptr.dtype.element_ty), mask=inside)


@jit
def _backward_kernel(
    u_ptr, h_ptr, v_ptr, dx_ptr, dh_ptr, dg_ptr, n, clamp, REVERSE: tl.constexpr, BLOCK: tl.constexpr, ACC: tl.constexpr
):
    """``v`` is the forward input ``x2`` (forward) or the output ``x2`` (reverse); ``dg`` is written in reverse only."""
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    u = tl.load(u_ptr + offsets, mask=inside, other=0.0).to(ACC)
    h = tl.load(h_ptr + offsets, mask=inside, other=0.0).to(ACC)
    v = tl.load(v_ptr + offsets, mask=inside, other=0.0).to(ACC)
    s, ds = _scale_exponent(h, clamp)
    if REVERSE:
        dx = u * tl.exp(-s)
        dh = -u * v * ds
        tl.store(dg_ptr + offsets, (-dx).to(dg_ptr.dtype.element_ty), mask=inside)
    else:
        dx = u * tl.exp(s)
        dh = dx * v * ds
    tl.store(dx_ptr + offsets, dx.to(dx_ptr.dtype.element_ty), mask=inside)
    tl.store(dh_ptr + offsets, dh.to(dh_ptr.dtype.element_ty), mask=inside)


def _launch(n: int, dtype: torch.dtype) -> tuple[tuple[int], dict[str, Any]]:
    acc = tl.float64 if dtype == torch.float64 else tl.float32
    return (triton.cdiv(n, _BLOCK),), {"BLOCK": _BLOCK, "ACC": acc, "num_warps": 4}


def _forward(x: torch.Tensor, h: torch.Tensor, g: torch.Tensor, clamp: float, reverse: bool) -> torch.Tensor:
    """Triton forward on contiguous, same-shape tensors -> a new contiguous tensor."""
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    if x.numel() == 0:
        return out
    grid, meta = _launch(x.numel(), x.dtype)
    with torch.cuda.device_of(x):
        _forward_kernel[grid](x, h, g, out, x.numel(), float(clamp), REVERSE=reverse, **meta)
    return out


class _TritonCoupling(torch.autograd.Function):
    """Autograd for the Triton path: both directions are Triton kernels (no double backward)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, h: torch.Tensor, g: torch.Tensor, clamp: float, reverse: bool
    ) -> torch.Tensor:
        out = _forward(x, h, g, clamp, reverse)
        ctx.save_for_backward(h, out if reverse else x)  # sigmoid(h) and exp(s) are recomputed, not stored
        ctx.clamp, ctx.reverse = clamp, reverse
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, u: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, v = ctx.saved_tensors
        u = u.contiguous()
        dx, dh = torch.empty_like(u), torch.empty_like(u)
        dg = torch.empty_like(u) if ctx.reverse else u  # forward direction: dL/dg is the incoming gradient itself
        if u.numel():
            grid, meta = _launch(u.numel(), u.dtype)
            with torch.cuda.device_of(u):
                _backward_kernel[grid](u, h, v, dx, dh, dg, u.numel(), float(ctx.clamp), REVERSE=ctx.reverse, **meta)
        needs = ctx.needs_input_grad
        return (dx if needs[0] else None, dh if needs[1] else None, dg if needs[2] else None, None, None)


def _check_inputs(x: torch.Tensor, h: torch.Tensor, g: torch.Tensor, clamp: float) -> None:
    for name, t in (("x", x), ("h", h), ("g", g)):
        if not isinstance(t, torch.Tensor) or t.dtype not in DTYPES:
            got = getattr(t, "dtype", type(t))
            raise TypeError(f"affine_coupling needs {name} to be a tensor of dtype {DTYPES}, got {got}")
    if not (x.shape == h.shape == g.shape):
        raise ValueError(
            "affine_coupling needs x, h and g of the same shape (the coupled half of the channels and the two "
            f"subnet outputs for it), got x: {tuple(x.shape)}, h: {tuple(h.shape)}, g: {tuple(g.shape)}"
        )
    if not (x.dtype == h.dtype == g.dtype):
        raise TypeError(f"x, h and g must share a dtype, got {x.dtype}, {h.dtype}, {g.dtype}")
    if not (x.device == h.device == g.device):
        raise ValueError(f"x, h and g must be on one device, got {x.device}, {h.device}, {g.device}")
    if not (isinstance(clamp, (int, float)) and clamp > 0):
        raise ValueError(f"clamp must be a positive number (the bound of the scale exponent s), got {clamp!r}")


def affine_coupling_reference(
    x: torch.Tensor, h: torch.Tensor, g: torch.Tensor, clamp: float = 1.0, reverse: bool = False
) -> torch.Tensor:
    """Pure-PyTorch coupling epilogue, the equations of the module docstring; same signature as the kernel."""
    _check_inputs(x, h, g, clamp)
    low_precision = x.dtype in (torch.float16, torch.bfloat16)
    xa, ha, ga = (t.float() for t in (x, h, g)) if low_precision else (x, h, g)
    s = clamp * (2 * torch.sigmoid(ha) - 1)
    out = (xa - ga) * torch.exp(-s) if reverse else xa * torch.exp(s) + ga
    return out.to(x.dtype)


def affine_coupling_triton(
    x: torch.Tensor, h: torch.Tensor, g: torch.Tensor, clamp: float = 1.0, reverse: bool = False
) -> torch.Tensor:
    """The Triton kernels behind ``affine_coupling``, with autograd (CUDA tensors or ``TRITON_INTERPRET=1``)."""
    _check_inputs(x, h, g, clamp)
    x, h, g = (t.contiguous() for t in (x, h, g))
    if torch.is_grad_enabled() and (x.requires_grad or h.requires_grad or g.requires_grad):
        out: torch.Tensor = _TritonCoupling.apply(x, h, g, float(clamp), bool(reverse))
        return out
    return _forward(x, h, g, float(clamp), bool(reverse))


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Benchmark inputs: ``x, h, g`` of shape ``(16, 9, size, size)``, the z branch of a x2 IRN at batch 16."""
    return tuple(torch.randn(16, 9, size, size, device=device, dtype=dtype) for _ in range(3))


COUPLING = register(
    KernelSpec(
        name="coupling",
        reference=affine_coupling_reference,
        triton=affine_coupling_triton,
        make_inputs=_make_inputs,
        sizes=(72, 144, 288, 576),
    )
)


def affine_coupling(
    x: torch.Tensor,
    h: torch.Tensor,
    g: torch.Tensor,
    clamp: float = 1.0,
    reverse: bool = False,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """The affine map of a coupling block with a clamped sigmoid scale (IRN's InvBlock; see module docs).

    ``x, h, g``: tensors of one shape (any, e.g. ``(B, C2, H, W)``), dtype and device: the coupled channels,
    the scale subnet's output ``H(y1)`` and the shift subnet's output ``G(y1)``. ``clamp``: ``c > 0``, the
    scale factor ``exp(s)`` stays in ``(e^-c, e^c)``. Returns ``x * exp(s) + g``, or with ``reverse=True``
    the inverse ``(x - g) * exp(-s)``, where ``s = c (2 sigmoid(h) - 1)``. ``backend``: ``"auto"``,
    ``"triton"`` or ``"reference"`` (default ``REPROBOOK_KERNELS``, else auto: Triton on CUDA).
    """
    out: torch.Tensor = COUPLING(x, h, g, clamp, reverse, backend=backend)
    return out
