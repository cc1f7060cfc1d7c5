"""Fused candidate scoring: gather ``K`` candidate embeddings, score, log-sum-exp and cross-entropy in registers.

MC-BERT's main model scores, at every token ``n``, ``K`` candidate words ``c_{n,k}`` against its output vector
``u_n`` with the shared token table ``E: (V, D)`` and a per-word bias ``b: (V,)``::

    z_{n,k} = <u_n, E[c_{n,k}]> + b[c_{n,k}]
    loss_n  = logsumexp_k z_{n,k} - logsumexp_{k : c_{n,k} = c_{n,y_n}} z_{n,k}     (0 where y_n = -1)

The second log-sum-exp runs over every slot that holds the correct word: sampling with replacement can repeat it,
and a cross-entropy on one slot alone would push identical logits up and down at once. With no repeats it is the
usual ``-log softmax(z)[y]``.

Backward, with ``p = softmax(z)``, ``q`` the softmax restricted to the correct slots and ``g = dL/dloss``::

    dz_{n,k} = g_n (p_{n,k} - q_{n,k});   du_n = sum_k dz_{n,k} E[c_{n,k}];
    dE[c_{n,k}] += dz_{n,k} u_n;          db[c_{n,k}] += dz_{n,k}

The official code gathers ``E[c]`` into a ``(tokens, D, K)`` tensor and calls ``baddbmm``: ``K D`` floats per token
for ``K`` dot products. The kernel walks the ``K`` slots of a block of ``BLOCK_N`` tokens, loads each candidate row
once, keeps the running maxima and sums of both log-sum-exps in registers, and writes three floats per token. The
backward recomputes the logits from the saved log-sum-exps and scatters ``dE`` and ``db`` with atomic adds (several
tokens, and several slots of one token, may name the same word). float32 arithmetic; ``D <= 1024`` in one block.
The reference :func:`candidate_cross_entropy_reference` materialises the gathered rows and runs on CPU.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from reprobook._validate import describe
from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

MAX_DIM = 1024


@jit
def _token_tile(u_ptr, c_ptr, y_ptr, n_tokens, dim, K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """This program's tile of tokens: ``(rows, row_ok, d, tile_ok, u, valid, right)`` with ``u`` the output
    vectors, ``valid`` the scored tokens (target >= 0) and ``right`` the id of each token's correct candidate."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_tokens
    d = tl.arange(0, BLOCK_D)
    tile_ok = row_ok[:, None] & (d < dim)[None, :]
    u = tl.load(u_ptr + rows[:, None] * dim + d[None, :], mask=tile_ok, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + rows, mask=row_ok, other=-1)
    valid = row_ok & (y >= 0)
    right = tl.load(c_ptr + rows * K + tl.maximum(y, 0), mask=valid, other=-1)
    return rows, row_ok, d, tile_ok, u, valid, right


@jit
def _candidate_score(u, e_ptr, b_ptr, c_ptr, rows, row_ok, d, tile_ok, dim, k, K: tl.constexpr):
    """Candidate ``k`` of every token in the tile: its id ``c``, embedding ``e`` and score ``z = u . e_c + b_c``."""
    c = tl.load(c_ptr + rows * K + k, mask=row_ok, other=0)
    e = tl.load(e_ptr + c[:, None] * dim + d[None, :], mask=tile_ok, other=0.0).to(tl.float32)
    z = tl.sum(u * e, 1) + tl.load(b_ptr + c, mask=row_ok, other=0.0).to(tl.float32)
    return c, e, z


@jit
def _forward_kernel(
    u_ptr, e_ptr, b_ptr, c_ptr, y_ptr, loss_ptr, lse_ptr, lsc_ptr, n_tokens, dim,
    K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    rows, row_ok, d, tile_ok, u, valid, right = _token_tile(u_ptr, c_ptr, y_ptr, n_tokens, dim, K, BLOCK_N, BLOCK_D)
    m = tl.full((BLOCK_N,), float("-inf"), tl.float32)
    s = tl.zeros((BLOCK_N,), tl.float32)
    mc = tl.full((BLOCK_N,), float("-inf"), tl.float32)
    sc = tl.zeros((BLOCK_N,), tl.float32)
    for k in range(K):
        c, _, z = _candidate_score(u, e_ptr, b_ptr, c_ptr, rows, row_ok, d, tile_ok, dim, k, K)
        m_new = tl.maximum(m, z)
        s = s * tl.exp(m - m_new) + tl.exp(z - m_new)
        m = m_new
        hit = c == right
        mc_new = tl.where(hit, tl.maximum(mc, z), mc)
        sc = tl.where(hit, sc * tl.exp(mc - mc_new) + tl.exp(z - mc_new), sc)
        mc = mc_new
    lse = m + tl.log(s)
    lsc = tl.where(valid, mc + tl.log(sc), 0.0)
    tl.store(loss_ptr + rows, tl.where(valid, lse - lsc, 0.0), mask=row_ok)
    tl.store(lse_ptr + rows, lse, mask=row_ok)
    tl.store(lsc_ptr + rows, lsc, mask=row_ok)


@jit
def _backward_kernel(
    u_ptr, e_ptr, b_ptr, c_ptr, y_ptr, lse_ptr, lsc_ptr, g_ptr, du_ptr, de_ptr, db_ptr, n_tokens, dim,
    K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """``du`` (float32 ``(N, D)``) is written; ``de`` (``(V, D)``) and ``db`` (``(V,)``), zeroed, are added to."""
    rows, row_ok, d, tile_ok, u, valid, right = _token_tile(u_ptr, c_ptr, y_ptr, n_tokens, dim, K, BLOCK_N, BLOCK_D)
    lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
    lsc = tl.load(lsc_ptr + rows, mask=row_ok, other=0.0)
    g = tl.where(valid, tl.load(g_ptr + rows, mask=row_ok, other=0.0), 0.0)
    du = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    for k in range(K):
        c, e, z = _candidate_score(u, e_ptr, b_ptr, c_ptr, rows, row_ok, d, tile_ok, dim, k, K)
        p = tl.exp(z - lse)
        q = tl.where(c == right, tl.exp(z - lsc), 0.0)
        dz = tl.where(valid, g * (p - q), 0.0)
        du += dz[:, None] * e
        tl.atomic_add(de_ptr + c[:, None] * dim + d[None, :], dz[:, None] * u, mask=tile_ok & valid[:, None])
        tl.atomic_add(db_ptr + c, dz, mask=valid)
    tl.store(du_ptr + rows[:, None] * dim + d[None, :], du, mask=tile_ok)


def _launch(dim: int) -> dict[str, Any]:
    block_d = max(16, triton.next_power_of_2(dim))
    return {"BLOCK_N": 32 if block_d <= 256 else 16, "BLOCK_D": block_d, "num_warps": 4}


def _flat(hidden: torch.Tensor, candidates: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    k = candidates.shape[-1]
    return (
        hidden.reshape(-1, hidden.shape[-1]).contiguous(),
        candidates.reshape(-1, k).contiguous(),
        target.reshape(-1).contiguous(),
    )


def _forward(
    u: torch.Tensor, e: torch.Tensor, b: torch.Tensor, c: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    n, dim = u.shape
    loss, lse, lsc = (torch.zeros(n, dtype=torch.float32, device=u.device) for _ in range(3))
    if n:
        config = _launch(dim)
        grid = (triton.cdiv(n, config["BLOCK_N"]),)
        with torch.cuda.device_of(u):
            _forward_kernel[grid](u, e, b, c, y, loss, lse, lsc, n, dim, K=c.shape[1], **config)
    return loss, lse, lsc


class _TritonCandidateCE(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cand: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        u, c, t = _flat(hidden, cand, y)
        e, b = weight.contiguous(), bias.contiguous()
        loss, lse, lsc = _forward(u, e, b, c, t)
        ctx.save_for_backward(u, e, b, c, t, lse, lsc)
        ctx.hidden_shape = hidden.shape
        return loss.view(y.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        u, e, b, c, t, lse, lsc = ctx.saved_tensors
        n, dim = u.shape
        du = torch.zeros(n, dim, dtype=torch.float32, device=u.device)
        de = torch.zeros(e.shape, dtype=torch.float32, device=u.device)
        db = torch.zeros(b.shape, dtype=torch.float32, device=u.device)
        if n:
            config = _launch(dim)
            grid = (triton.cdiv(n, config["BLOCK_N"]),)
            g = grad.reshape(-1).float().contiguous()
            with torch.cuda.device_of(u):
                _backward_kernel[grid](u, e, b, c, t, lse, lsc, g, du, de, db, n, dim, K=c.shape[1], **config)
        return du.to(u.dtype).view(ctx.hidden_shape), de.to(e.dtype), db.to(b.dtype), None, None


def _check_inputs(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, candidates: torch.Tensor, target: torch.Tensor
) -> None:
    for name, t in (("hidden", hidden), ("weight", weight), ("bias", bias)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a float tensor, got {describe(t)}")
    if weight.ndim != 2 or hidden.ndim < 1 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(f"hidden (..., D) and weight (V, D) must share D, got {describe(hidden)}, {describe(weight)}")
    if weight.shape[1] > MAX_DIM:
        raise ValueError(f"the feature dimension D={weight.shape[1]} is above the kernel's limit of {MAX_DIM}")
    if bias.shape != weight.shape[:1]:
        raise ValueError(f"bias must be (V,) = ({weight.shape[0]},), got {describe(bias)}")
    lead = tuple(hidden.shape[:-1])
    if not isinstance(candidates, torch.Tensor) or candidates.dtype != torch.long or candidates.ndim != len(lead) + 1:
        raise ValueError(
            f"candidates must be a long tensor (..., K) with leading shape {lead}, got {describe(candidates)}"
        )
    if tuple(candidates.shape[:-1]) != lead or candidates.shape[-1] < 2:
        raise ValueError(f"candidates must be {lead} + (K >= 2,), got {tuple(candidates.shape)} (K < 2 is no choice)")
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long or tuple(target.shape) != lead:
        raise ValueError(
            f"target must be a long tensor of shape {lead} (a slot, or -1 to ignore), got {describe(target)}"
        )
    k = candidates.shape[-1]
    if target.numel() and (int(target.min()) < -1 or int(target.max()) >= k):
        raise ValueError(
            f"target slots must lie in -1..{k - 1} (-1: ignored), got {int(target.min())}..{int(target.max())}"
        )
    if candidates.numel() and (int(candidates.min()) < 0 or int(candidates.max()) >= weight.shape[0]):
        raise ValueError(f"candidates hold word ids outside the vocabulary 0..{weight.shape[0] - 1}")


def candidate_cross_entropy_reference(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, candidates: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """PyTorch reference: gathers ``E[c]`` as ``(..., K, D)`` (what the official ``baddbmm`` does) in float32.

    The rows are gathered with ``F.embedding``, whose backward sums repeated rows in a fixed order; indexing
    (``weight[candidates]``) accumulates them with threads racing, so two runs on a CPU differed in the last bits
    and a pre-training run drifted apart (``tests/kernels/test_deterministic_backward.py``)."""
    _check_inputs(hidden, weight, bias, candidates, target)
    rows = F.embedding(candidates, weight.float())
    z = torch.einsum("...d,...kd->...k", hidden.float(), rows) + F.embedding(candidates, bias.float()[:, None])[..., 0]
    right = candidates.gather(-1, target.clamp(min=0)[..., None])
    correct = z.masked_fill(candidates != right, float("-inf"))
    loss = z.logsumexp(-1) - correct.logsumexp(-1)
    return torch.where(target >= 0, loss, torch.zeros_like(loss))


def candidate_cross_entropy_triton(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, candidates: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """The Triton kernels behind :func:`candidate_cross_entropy` (CUDA, or any tensors under the interpreter)."""
    _check_inputs(hidden, weight, bias, candidates, target)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (hidden, weight, bias)):
        loss: torch.Tensor = _TritonCandidateCE.apply(hidden, weight, bias, candidates, target)
        return loss
    u, c, t = _flat(hidden.detach(), candidates, target)
    return _forward(u, weight.detach().contiguous(), bias.detach().contiguous(), c, t)[0].view(target.shape)


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[Any, ...]:
    """Benchmark inputs: ``size`` tokens, ``D = 768``, ``K = 10``, a 32,768-word table (MC-BERT base)."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(size, 768, generator=generator) / 768**0.5
    weight = torch.randn(32_768, 768, generator=generator) / 768**0.25
    bias = torch.zeros(32_768)
    candidates = torch.randint(32_768, (size, 10), generator=generator)
    target = torch.randint(2, (size,), generator=generator)
    target[::8] = -1  # padding
    return (
        hidden.to(device, dtype),
        weight.to(device, dtype),
        bias.to(device, dtype),
        candidates.to(device),
        target.to(device),
    )


CANDIDATE_SCORING = register(
    KernelSpec(
        name="candidate_scoring",
        reference=candidate_cross_entropy_reference,
        triton=candidate_cross_entropy_triton,
        make_inputs=_make_inputs,
        sizes=(16_384, 65_536, 131_072),
        atol=1e-4,
        rtol=1e-4,
    )
)


def candidate_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    candidates: torch.Tensor,
    target: torch.Tensor,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Per-token multi-choice cross-entropy over ``K`` candidate words, without the gathered ``(..., K, D)`` rows.

    ``hidden``: ``(..., D)`` output vectors ``u``; ``weight``: ``(V, D)`` the token table; ``bias``: ``(V,)``;
    ``candidates``: long ``(..., K)`` word ids; ``target``: long ``(...)``, the correct slot, or -1 to ignore.
    Returns float32 ``(...)`` (module docstring; 0 where ignored), differentiable in ``hidden``, ``weight`` and
    ``bias``. ``backend`` as for every kernel: Triton on CUDA, the reference elsewhere.
    """
    loss: torch.Tensor = CANDIDATE_SCORING(hidden, weight, bias, candidates, target, backend=backend)
    return loss
