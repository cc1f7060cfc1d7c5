"""Fused row-wise softmax over the last dimension, with an optional additive mask.

Forward, for each row ``z = x + mask``::

    y_i = exp(z_i - m) / l,    m = max_j z_j,    l = sum_j exp(z_j - m)

Backward, the softmax Jacobian applied to the incoming gradient ``dy``::

    dx = y * (dy - sum_j dy_j * y_j),    dmask = dx summed over the dimensions the mask was broadcast along

One Triton program handles one row in chunks of ``BLOCK`` columns, so rows of any length work. The forward
makes two passes: the first keeps a running max ``m`` and a running sum ``l``, rescaling ``l`` by
``exp(m_old - m_new)`` whenever the max grows (the online normalizer of Milakov & Gimelshein, 2018, that
FlashAttention builds on); the second writes ``y``. Arithmetic is float32 (float64 for float64 inputs);
``y`` has the dtype of ``x``. A row whose entries are all ``-inf`` gives NaN, as ``torch.softmax`` does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_MAX_BLOCK = 4096  # columns per chunk; longer rows loop over chunks


# CHUNKS = cdiv(n_cols, BLOCK) is a compile-time constant rather than a loop to the runtime ``n_cols``: Triton
# 3.6's interpreter cannot loop to a runtime bound under numpy >= 2.4 (triton-lang/triton#9171). It costs
# one compilation per chunk count, and rows up to 4096 columns have one chunk.


@jit
def _forward_kernel(
    x_ptr,
    mask_ptr,
    y_ptr,
    n_cols,
    x_row_stride,
    x_col_stride,
    mask_row_stride,
    mask_col_stride,
    HAS_MASK: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNKS: tl.constexpr,
    ACC: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    m = tl.full([], float("-inf"), ACC)  # running max
    l = tl.zeros([], ACC)  # running sum of exp(z - m)
    for chunk in range(CHUNKS):
        cols = chunk * BLOCK + tl.arange(0, BLOCK)
        z = _load_logits(
            x_ptr,
            mask_ptr,
            row,
            cols,
            n_cols,
            x_row_stride,
            x_col_stride,
            mask_row_stride,
            mask_col_stride,
            HAS_MASK,
            ACC,
        )
        m_new = tl.maximum(m, tl.max(z, 0))
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)  # no -inf - -inf while the row is all -inf so far
        l = l * tl.exp(m - shift) + tl.sum(tl.exp(z - shift), 0)
        m = m_new
    for chunk in range(CHUNKS):
        cols = chunk * BLOCK + tl.arange(0, BLOCK)
        z = _load_logits(
            x_ptr,
            mask_ptr,
            row,
            cols,
            n_cols,
            x_row_stride,
            x_col_stride,
            mask_row_stride,
            mask_col_stride,
            HAS_MASK,
            ACC,
        )
        y = tl.exp(z - m) / l
        tl.store(y_ptr + row * n_cols + cols, y.to(y_ptr.dtype.element_ty), mask=cols < n_cols)


@jit
def _load_logits(
    x_ptr,
    mask_ptr,
    row,
    cols,
    n_cols,
    x_row_stride,
    x_col_stride,
    mask_row_stride,
    mask_col_stride,
    HAS_MASK: tl.constexpr,
    ACC: tl.constexpr,
):
    """``x + mask`` for ``cols`` of ``row`` in the ``ACC`` dtype; ``-inf`` past the end of the row."""
    inside = cols < n_cols
    z = tl.load(x_ptr + row * x_row_stride + cols * x_col_stride, mask=inside, other=float("-inf")).to(ACC)
    if HAS_MASK:
        z += tl.load(mask_ptr + row * mask_row_stride + cols * mask_col_stride, mask=inside, other=0.0).to(ACC)
    return z


@jit
def _backward_kernel(
    y_ptr,
    dy_ptr,
    dz_ptr,
    n_cols,
    dy_row_stride,
    dy_col_stride,
    BLOCK: tl.constexpr,
    CHUNKS: tl.constexpr,
    ACC: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    dot = tl.zeros([], ACC)  # sum_j dy_j * y_j
    for chunk in range(CHUNKS):
        cols = chunk * BLOCK + tl.arange(0, BLOCK)
        y = tl.load(y_ptr + row * n_cols + cols, mask=cols < n_cols, other=0.0).to(ACC)
        dy = tl.load(dy_ptr + row * dy_row_stride + cols * dy_col_stride, mask=cols < n_cols, other=0.0).to(ACC)
        dot += tl.sum(y * dy, 0)
    for chunk in range(CHUNKS):
        cols = chunk * BLOCK + tl.arange(0, BLOCK)
        y = tl.load(y_ptr + row * n_cols + cols, mask=cols < n_cols, other=0.0).to(ACC)
        dy = tl.load(dy_ptr + row * dy_row_stride + cols * dy_col_stride, mask=cols < n_cols, other=0.0).to(ACC)
        dz = y * (dy - dot)
        tl.store(dz_ptr + row * n_cols + cols, dz.to(dz_ptr.dtype.element_ty), mask=cols < n_cols)


def _launch_config(n_cols: int, dtype: torch.dtype) -> dict[str, Any]:
    """Kernel meta-parameters for rows of ``n_cols >= 1`` entries of ``dtype``."""
    block = min(triton.next_power_of_2(n_cols), _MAX_BLOCK)
    num_warps = 4 if block <= 1024 else 8 if block <= 2048 else 16
    acc = tl.float64 if dtype == torch.float64 else tl.float32
    return {"BLOCK": block, "CHUNKS": triton.cdiv(n_cols, block), "ACC": acc, "num_warps": num_warps}


def _forward(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Triton forward. ``x: (..., N)``, ``mask``: broadcastable to ``x`` or None -> ``y``: contiguous ``(..., N)``."""
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if x.numel() == 0:
        return y
    n_cols = x.shape[-1]
    x2 = x.reshape(-1, n_cols)  # a view where possible; strides go to the kernel
    # A broadcast mask stays a stride-0 view after expand; reshape copies only when it has to.
    m2 = x2 if mask is None else mask.expand_as(x).reshape(-1, n_cols)
    with torch.cuda.device_of(x):
        _forward_kernel[(x2.shape[0],)](
            x2,
            m2,
            y,
            n_cols,
            x2.stride(0),
            x2.stride(1),
            m2.stride(0),
            m2.stride(1),
            HAS_MASK=mask is not None,
            **_launch_config(n_cols, x.dtype),
        )
    return y


def _backward(y: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Triton backward. ``y``: contiguous forward output ``(..., N)``, ``dy``: its gradient -> ``dL/d(x + mask)``."""
    dz = torch.empty_like(y)
    if y.numel() == 0:
        return dz
    n_cols = y.shape[-1]
    dy2 = dy.reshape(-1, n_cols)
    with torch.cuda.device_of(y):
        _backward_kernel[(dy2.shape[0],)](
            y, dy2, dz, n_cols, dy2.stride(0), dy2.stride(1), **_launch_config(n_cols, y.dtype)
        )
    return dz


class _TritonSoftmax(torch.autograd.Function):
    """Autograd for the Triton path; both directions are Triton kernels (no double backward)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        y = _forward(x, mask)
        ctx.save_for_backward(y)
        ctx.mask_shape = None if mask is None else mask.shape
        ctx.mask_dtype = None if mask is None else mask.dtype
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        (y,) = ctx.saved_tensors
        dz = _backward(y, dy)
        dx = dz if ctx.needs_input_grad[0] else None
        dmask = dz.sum_to_size(ctx.mask_shape).to(ctx.mask_dtype) if ctx.needs_input_grad[1] else None
        return dx, dmask


def _check_inputs(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype not in DTYPES:
        raise TypeError(f"softmax needs x to be a tensor of dtype {DTYPES}, got {getattr(x, 'dtype', type(x))}")
    if x.ndim == 0:
        raise ValueError("softmax needs x with at least one dimension, got a 0-d tensor")
    if dim not in (-1, x.ndim - 1):
        raise ValueError(
            f"softmax works over the last dimension only: dim={dim} is not -1 or {x.ndim - 1} for a "
            f"{x.ndim}-d input; call softmax(x.movedim({dim}, -1)).movedim(-1, {dim}) instead"
        )
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype not in DTYPES:
        raise TypeError(
            f"mask must be an additive float tensor (0 to keep, -inf to drop) of dtype {DTYPES}, "
            f"got {getattr(mask, 'dtype', type(mask))}; turn a boolean keep-mask into one with "
            "torch.zeros(keep.shape).masked_fill(~keep, float('-inf'))"
        )
    if mask.device != x.device:
        raise ValueError(f"mask is on {mask.device} but x is on {x.device}")
    trailing = zip(reversed(mask.shape), reversed(x.shape))  # broadcast_shapes, minus its ~10 us
    if mask.ndim > x.ndim or any(m not in (1, n) for m, n in trailing):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to x of shape {tuple(x.shape)}")


def softmax_reference(x: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """Pure-PyTorch softmax of ``x + mask`` over the last dim; same signature and arithmetic as the kernel."""
    _check_inputs(x, mask, dim)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    z = x.to(acc) if mask is None else x.to(acc) + mask.to(acc)
    return torch.softmax(z, dim=-1).to(x.dtype)


def softmax_triton(x: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """The Triton kernels behind ``softmax``, with autograd (needs CUDA tensors or ``TRITON_INTERPRET=1``)."""
    _check_inputs(x, mask, dim)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or (mask is not None and mask.requires_grad))
    y: torch.Tensor = _TritonSoftmax.apply(x, mask) if needs_grad else _forward(x, mask)  # apply costs ~30 us
    return y


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Benchmark inputs: ``x: (4096, size)`` and a key-padding mask ``(size,)`` dropping the last eighth."""
    x = torch.randn(4096, size, device=device, dtype=dtype)
    mask = torch.zeros(size, device=device, dtype=dtype)
    mask[size - size // 8 :] = float("-inf")
    return x, mask


SOFTMAX = register(
    KernelSpec(
        name="softmax",
        reference=softmax_reference,
        triton=softmax_triton,
        make_inputs=_make_inputs,
        sizes=(128, 1024, 4096, 16384),
    )
)


def softmax(
    x: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1, *, backend: str | None = None
) -> torch.Tensor:
    """Softmax of ``x + mask`` over the last dimension.

    ``x: (..., N)`` float16/bfloat16/float32/float64, any leading shape (empty included); ``mask``: an
    additive float mask broadcastable to ``x`` (``0`` keeps, ``-inf`` drops), or None; ``dim`` must be the
    last dimension. Returns ``y: (..., N)`` in the dtype of ``x``. ``backend``: ``"auto"``, ``"triton"`` or
    ``"reference"`` (default: ``REPROBOOK_KERNELS``, else ``"auto"``; see :mod:`reprobook.kernels.registry`).
    """
    y: torch.Tensor = SOFTMAX(x, mask, dim, backend=backend)
    return y
