"""Guarded Triton import, so :mod:`reprobook.kernels` imports where Triton is missing or broken (macOS).

Kernel files write ``@jit`` instead of ``@triton.jit``: without Triton it leaves the function as plain,
never-called Python, and the dispatch in :mod:`reprobook.kernels.registry` falls back to the reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

try:
    import triton
    import triton.language as tl
except Exception:  # ImportError, or an install that fails at import (missing driver or compiler libraries)
    triton = None
    tl = None

# Triton decides at decoration time whether ``@triton.jit`` builds a GPU kernel or an interpreted one,
# so the mode that matters is the one in force when the kernel files were imported, not the current one.
_TRUE = ("1", "true", "on", "yes")  # the spellings Triton itself accepts
INTERPRET = triton is not None and os.environ.get("TRITON_INTERPRET", "").strip().lower() in _TRUE


def triton_available() -> bool:
    """Whether Triton imported; kernels then run on CUDA tensors, or anywhere under ``TRITON_INTERPRET=1``."""
    return triton is not None


def jit(fn: Callable[..., Any]) -> Any:
    """``triton.jit`` when Triton is available; otherwise ``fn`` unchanged (it is never launched)."""
    return triton.jit(fn) if triton is not None else fn
