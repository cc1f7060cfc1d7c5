"""Check a kernel against its reference: values, and gradients through each implementation's autograd.

Chapter tests call :func:`assert_matches_reference` on random and edge-case inputs; on CPU it needs
``TRITON_INTERPRET=1`` (set before import) so the Triton path runs in the interpreter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reprobook.kernels.registry import KernelSpec, get


def assert_matches_reference(
    spec_or_name: KernelSpec | str,
    *inputs: Any,
    atol: float | None = None,
    rtol: float | None = None,
    check_grad: bool = True,
    **kwargs: Any,
) -> None:
    """Run ``spec(*inputs, **kwargs)`` with the Triton and the reference backends; raise if they differ.

    Outputs (a tensor or a tuple of tensors) must match within ``atol + rtol * |reference|`` (defaults:
    the spec's), NaN matching NaN. With ``check_grad``, a fixed random upstream gradient is pulled back
    through both, and the gradients with respect to every floating input that requires grad must match too.
    Raises ``AssertionError`` naming the output or input, the max abs error and the worst element.
    Tensors go in ``inputs``; ``kwargs`` are options (``dim=-1``) passed as they are to both backends.
    """
    spec = spec_or_name if isinstance(spec_or_name, KernelSpec) else get(spec_or_name)
    atol = spec.atol if atol is None else atol
    rtol = spec.rtol if rtol is None else rtol
    wrt = [i for i, a in enumerate(inputs) if isinstance(a, torch.Tensor) and a.is_floating_point() and a.requires_grad]
    if check_grad and not wrt:
        raise ValueError("check_grad=True but no floating input requires grad; call .requires_grad_() on one")

    triton_in, ref_in = (tuple(_fresh_leaf(a) for a in inputs) for _ in range(2))  # one autograd graph each
    triton_out = _as_tuple(spec(*triton_in, backend="triton", **kwargs))
    ref_out = _as_tuple(spec(*ref_in, backend="reference", **kwargs))
    _assert_close(spec.name, "output", triton_out, ref_out, atol, rtol)
    if not check_grad:
        return

    differentiable = [k for k, o in enumerate(ref_out) if o.requires_grad]
    for k in differentiable:
        if not triton_out[k].requires_grad:
            raise AssertionError(f"{spec.name}: Triton output {k} is not differentiable; the reference's is")
    generator = torch.Generator().manual_seed(0)
    upstream = [torch.randn(ref_out[k].shape, generator=generator, dtype=ref_out[k].dtype) for k in differentiable]
    grads = [
        torch.autograd.grad(
            [outputs[k] for k in differentiable],
            [leaves[i] for i in wrt],
            [u.to(outputs[k].device) for u, k in zip(upstream, differentiable)],
            allow_unused=True,
            materialize_grads=True,
        )
        for leaves, outputs in ((triton_in, triton_out), (ref_in, ref_out))
    ]
    _assert_close(spec.name, "gradient wrt input", grads[0], grads[1], atol, rtol, labels=wrt)


def max_abs_error(actual: Any, expected: Any) -> float:
    """Largest ``|actual - expected|`` over the outputs (tensors or tuples of them); see :func:`_abs_error`."""
    errors = [_abs_error(a, e).max().item() for a, e in zip(_as_tuple(actual), _as_tuple(expected)) if a.numel()]
    return max(errors, default=0.0)


def _abs_error(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Elementwise ``|actual - expected|`` in float64; 0 where both are NaN or the same infinity, inf if one is NaN."""
    a, e = actual.detach().double(), expected.detach().double()
    error = torch.where(a == e, 0.0, (a - e).abs())
    error = torch.where(a.isnan() & e.isnan(), 0.0, error)
    return error.nan_to_num(nan=float("inf"))


def _fresh_leaf(a: Any) -> Any:
    """A detached copy of a tensor input, requiring grad like the original; other inputs as they are."""
    if not isinstance(a, torch.Tensor):
        return a
    return a.detach().clone().requires_grad_(a.requires_grad)


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _assert_close(
    kernel: str,
    what: str,
    actual: Sequence[torch.Tensor],
    expected: Sequence[torch.Tensor],
    atol: float,
    rtol: float,
    labels: Sequence[int] | None = None,
) -> None:
    if len(actual) != len(expected):
        raise AssertionError(f"{kernel}: Triton gave {len(actual)} {what}s, the reference {len(expected)}")
    for k, (a, e) in enumerate(zip(actual, expected)):
        name = f"{kernel}: {what} {k if labels is None else labels[k]}"
        if a.shape != e.shape or a.dtype != e.dtype:
            got, want = f"{a.dtype} {tuple(a.shape)}", f"{e.dtype} {tuple(e.shape)}"
            raise AssertionError(f"{name}: Triton gave {got}, the reference {want}")
        error = _abs_error(a, e)
        scale = e.detach().double().abs().nan_to_num(nan=0.0, posinf=0.0)  # infinities must match exactly
        excess = error - (atol + rtol * scale)
        n_bad = int((excess > 0).sum())
        if n_bad:
            where = tuple(int(i) for i in torch.unravel_index(excess.argmax(), excess.shape))
            raise AssertionError(
                f"{name} differs from the reference: max abs error {error.max().item():.3g}; worst at index "
                f"{where}: Triton {a[where].item():.6g}, reference {e[where].item():.6g}; {n_bad} of "
                f"{excess.numel()} elements exceed atol={atol:g} + rtol={rtol:g} * |reference|"
            )
