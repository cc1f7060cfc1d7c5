"""Triton kernels for the book's hot spots, each beside a pure-PyTorch reference with the same signature.

One file per kernel (``softmax.py``, ...) holds the Triton kernel(s), the reference and a registered
:class:`KernelSpec`; :mod:`~reprobook.kernels.registry` holds the dispatch rule, ``testing`` the check that
a kernel matches its reference, and ``python -m reprobook.kernels.bench`` times them on a GPU.

The package imports without a GPU and without Triton: calls then run the reference. On CPU, set
``TRITON_INTERPRET=1`` before importing to run the Triton kernels in Triton's interpreter (slow, exact).
"""

from __future__ import annotations

from reprobook.kernels._triton import triton_available
from reprobook.kernels.branch_attention import branch_attention, branch_attention_reference, branch_attention_triton
from reprobook.kernels.candidate_scoring import (
    candidate_cross_entropy,
    candidate_cross_entropy_reference,
    candidate_cross_entropy_triton,
)
from reprobook.kernels.coupling import affine_coupling, affine_coupling_reference, affine_coupling_triton
from reprobook.kernels.gaussian_rate import gaussian_rate, gaussian_rate_reference, gaussian_rate_triton
from reprobook.kernels.kg_rank import (
    kg_rank_counts,
    kg_rank_counts_reference,
    kg_rank_counts_triton,
    pack_bitmask,
    unpack_bitmask,
)
from reprobook.kernels.length_regulator import (
    variance_regulate,
    variance_regulate_reference,
    variance_regulate_triton,
)
from reprobook.kernels.linear_cross_entropy import (
    linear_cross_entropy,
    linear_cross_entropy_reference,
    linear_cross_entropy_triton,
)
from reprobook.kernels.mix_attention import (
    mix_attention,
    mix_attention_reference,
    mix_attention_triton,
    mix_attention_weights,
)
from reprobook.kernels.registry import BACKENDS, ENV_VAR, KernelSpec, all_kernels, choose_backend, get, register
from reprobook.kernels.sde_exit import sde_exit, sde_exit_reference, sde_exit_triton
from reprobook.kernels.softmax import softmax, softmax_reference, softmax_triton
from reprobook.kernels.vector_quantize import vector_quantize, vector_quantize_reference, vector_quantize_triton

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "KernelSpec",
    "affine_coupling",
    "affine_coupling_reference",
    "affine_coupling_triton",
    "all_kernels",
    "branch_attention",
    "branch_attention_reference",
    "branch_attention_triton",
    "candidate_cross_entropy",
    "candidate_cross_entropy_reference",
    "candidate_cross_entropy_triton",
    "choose_backend",
    "gaussian_rate",
    "gaussian_rate_reference",
    "gaussian_rate_triton",
    "get",
    "kg_rank_counts",
    "kg_rank_counts_reference",
    "kg_rank_counts_triton",
    "linear_cross_entropy",
    "linear_cross_entropy_reference",
    "linear_cross_entropy_triton",
    "mix_attention",
    "mix_attention_reference",
    "mix_attention_triton",
    "mix_attention_weights",
    "pack_bitmask",
    "register",
    "sde_exit",
    "sde_exit_reference",
    "sde_exit_triton",
    "softmax",
    "softmax_reference",
    "softmax_triton",
    "triton_available",
    "unpack_bitmask",
    "variance_regulate",
    "variance_regulate_reference",
    "variance_regulate_triton",
    "vector_quantize",
    "vector_quantize_reference",
    "vector_quantize_triton",
]
