"""The kernel registry and the dispatch rule shared by every kernel.

Each kernel file registers one :class:`KernelSpec`: a Triton implementation, a pure-PyTorch reference
with the same signature, and what the benchmark and tests need. Calling the spec picks the backend:

* ``backend=`` argument if given, else ``REPROBOOK_KERNELS``, else ``"auto"``;
* ``"auto"`` runs Triton when it can (Triton imported, either every input tensor is on CUDA or
  ``TRITON_INTERPRET=1`` was set before import, and the kernel's ``unsupported`` check passes), the reference
  otherwise;
* ``"triton"`` insists (``RuntimeError`` saying why when it cannot run); ``"reference"`` never uses Triton.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reprobook._validate import check_choice
from reprobook.kernels import _triton

BACKENDS = ("auto", "triton", "reference")
ENV_VAR = "REPROBOOK_KERNELS"


@dataclass(frozen=True)
class KernelSpec:
    """One kernel: ``spec(*inputs, backend=None)`` runs ``triton`` or ``reference`` on the same arguments.

    ``make_inputs(size, device, dtype)`` returns benchmark inputs for a problem of ``size`` (its meaning
    is the kernel's: the softmax row length, say); ``sizes`` are the sizes ``bench`` runs. ``atol`` and
    ``rtol`` are the float32 tolerances used by :func:`reprobook.kernels.testing.assert_matches_reference`.
    ``unsupported(*args, **kwargs)`` says, as the end of a sentence, why the Triton kernel does not serve these
    inputs (a length it was not built for, say), or returns None when it does; ``"auto"`` then runs the reference.
    ``draws_random``: the Triton kernel draws its own random numbers (Philox in registers) and the reference
    draws from PyTorch's generator, so on the benchmark's inputs their outputs agree in distribution only; the
    tests compare the two on given noise, and ``bench`` prints no error for such a kernel.
    """

    name: str
    reference: Callable[..., Any]
    triton: Callable[..., Any]
    make_inputs: Callable[[int, torch.device, torch.dtype], tuple[Any, ...]]
    sizes: tuple[int, ...]
    atol: float = 1e-5
    rtol: float = 1e-5
    unsupported: Callable[..., str | None] | None = None
    draws_random: bool = False

    def __call__(self, *args: Any, backend: str | None = None, **kwargs: Any) -> Any:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        reason = None if self.unsupported is None else self.unsupported(*args, **kwargs)
        run = self.triton if choose_backend(backend, tensors, reason) == "triton" else self.reference
        return run(*args, **kwargs)


def _requested_backend(backend: str | None = None) -> str:
    """``backend`` if given, else ``REPROBOOK_KERNELS`` (case and spaces ignored), else ``"auto"``."""
    if backend is not None:
        return check_choice("backend", backend, BACKENDS)
    return check_choice(ENV_VAR, os.environ.get(ENV_VAR, "").strip().lower() or "auto", BACKENDS)


def choose_backend(backend: str | None, tensors: Sequence[torch.Tensor], unsupported: str | None = None) -> str:
    """``"triton"`` or ``"reference"``: the implementation that runs on ``tensors`` (rule in module docs).

    ``unsupported``: the kernel's own reason not to serve these inputs (``KernelSpec.unsupported``), or None.
    """
    requested = _requested_backend(backend)
    if requested == "reference":
        return "reference"
    reason = _why_triton_cannot_run(tensors) or unsupported
    if reason is None:
        return "triton"
    if requested == "triton":
        source = "backend='triton'" if backend is not None else f"{ENV_VAR}=triton"
        raise RuntimeError(f"{source} asks for the Triton kernels but {reason}")
    return "reference"


def _why_triton_cannot_run(tensors: Sequence[torch.Tensor]) -> str | None:
    """Why the Triton kernels cannot run on ``tensors``, as the end of a sentence; None when they can."""
    if not _triton.triton_available():
        return "Triton is not installed or failed to import; use backend='reference'"
    if _triton.INTERPRET:
        return None
    if not tensors:
        return "no input is a tensor, so none is on CUDA"
    devices = sorted({t.device.type for t in tensors} - {"cuda"})
    if devices:
        return (
            f"the inputs are on {', '.join(devices)}, not CUDA; move them to a GPU, or set TRITON_INTERPRET=1 "
            "before importing reprobook.kernels to run the Triton interpreter on CPU"
        )
    return None


_REGISTRY: dict[str, KernelSpec] = {}


def register(spec: KernelSpec) -> KernelSpec:
    """Add ``spec`` under ``spec.name`` and return it; a second kernel with the same name is an error."""
    old = _REGISTRY.get(spec.name)
    # Re-importing the same module (a notebook's autoreload) replaces its spec; another module may not.
    if old is not None and old.reference.__module__ != spec.reference.__module__:
        raise ValueError(f"a kernel named {spec.name!r} is already registered by {old.reference.__module__}")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> KernelSpec:
    """The registered kernel called ``name``; ``ValueError`` listing the registered names otherwise."""
    return _REGISTRY[check_choice("kernel", name, sorted(_REGISTRY))]


def all_kernels() -> list[KernelSpec]:
    """Every registered kernel, sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
