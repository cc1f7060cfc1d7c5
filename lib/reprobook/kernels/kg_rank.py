"""Fused 1-vs-all bilinear scoring with filtered rank counting, never storing the ``(B, E)`` score matrix.

A bilinear link-prediction model (DistMult, ComplEx, SEEK, ...) is linear in the answer's embedding: for
each query there is one vector ``q_b`` with ``score(b, e) = <q_b, E_e>`` for every entity ``e``. The
caller builds ``q`` (its model's query vector; the kernel knows no model) and names the gold entity of
each query. For each query ``b``::

    score_be = <q_b, E_e>  for every entity e      # one row of q @ E.T, a tile at a time
    higher_b = #{e : e not filtered, e != gold_b, score_be > score_b,gold_b}
    ties_b   = #{e : e not filtered, e != gold_b, score_be == score_b,gold_b}

The realistic rank of :func:`reprobook.metrics.realistic_ranks` is then ``higher + 1 + ties / 2`` (the
optimistic rank is ``higher + 1``, the pessimistic one ``higher + ties + 1``). A NaN score, the gold's or
a candidate's, counts the candidate as *higher*: a diverged model gets the worst rank, never the best.

**The filter** is a bitmask: ``filter_bits`` is int32 ``(B, ceil(E / 32))``, bit ``e % 32`` of word
``e // 32`` of row ``b`` set when entity ``e`` is another known answer of query ``b`` (left out of the
counts). It costs ``E / 8`` bytes a query, 32 times less than one float32 score row;
:func:`pack_bitmask` builds it from a bool mask, :func:`reprobook.metrics.filter_bitmask` from the known
triples without a dense mask. The gold entity is never counted, whatever its bit says.

**The Triton kernel.** One program takes ``BLOCK_B`` query vectors. It scores their gold entities with
``tl.dot`` like every other score (the diagonal of ``q @ E[gold].T``), so an entity tied with the gold
compares equal when the arithmetic is exact. Then it walks over the entities ``BLOCK_N`` at a time:
``tl.dot`` of ``q`` with a tile of ``E``, a test against the gold score and the bitmask, and two running
counts. Memory is ``O(B)`` instead of ``O(B E)``. Float32 only, with IEEE float32 products (no TF32,
which would blur near-ties).

The PyTorch reference :func:`kg_rank_counts_reference` materialises ``q @ E.T`` and gives the same
counts; it is what runs on CPU (and in CI).
"""

from __future__ import annotations

from typing import Any

import torch

from reprobook._validate import describe
from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

WORD_BITS = 32


# ------------------------------------------------------------------------------------------------ filter


def pack_bitmask(mask: torch.Tensor) -> torch.Tensor:
    """A bool ``(B, E)`` mask as int32 words ``(B, ceil(E / 32))``: bit ``e % 32`` of word ``e // 32``."""
    if mask.dtype != torch.bool or mask.ndim != 2:
        raise ValueError(f"mask must be a bool tensor (B, E), got {describe(mask)}")
    B, E = mask.shape
    words = -(-E // WORD_BITS)
    padded = torch.zeros(B, words * WORD_BITS, dtype=torch.int64, device=mask.device)
    padded[:, :E] = mask.long()
    weights = torch.tensor([1 << i for i in range(WORD_BITS)], dtype=torch.int64, device=mask.device)
    packed = (padded.view(B, words, WORD_BITS) * weights).sum(-1)  # in [0, 2^32)
    return torch.where(packed >= 2**31, packed - 2**32, packed).to(torch.int32)  # the int32 with the same bits


def unpack_bitmask(bits: torch.Tensor, num_entities: int) -> torch.Tensor:
    """The inverse of :func:`pack_bitmask`: int32 ``(B, W)`` -> bool ``(B, num_entities)``."""
    _check_bits(bits, num_entities)
    shifts = torch.arange(WORD_BITS, device=bits.device, dtype=torch.int32)
    unpacked = (bits[:, :, None] >> shifts) & 1  # arithmetic shift: bit 31 still reads as 1
    return unpacked.flatten(1)[:, :num_entities].bool()


# -------------------------------------------------------------------------------------------- checks


def _check_bits(bits: torch.Tensor, num_entities: int, batch: int | None = None) -> None:
    words = -(-num_entities // WORD_BITS)
    if not isinstance(bits, torch.Tensor) or bits.dtype != torch.int32 or bits.ndim != 2 or bits.shape[1] != words:
        raise ValueError(
            f"filter_bits must be int32 (B, ceil(E / 32)) = (B, {words}) for E = {num_entities}, got "
            f"{describe(bits)}; build it with reprobook.metrics.filter_bitmask or pack_bitmask"
        )
    if batch is not None and bits.shape[0] != batch:
        raise ValueError(f"filter_bits has {bits.shape[0]} rows for {batch} queries")


def _check_inputs(queries: torch.Tensor, entity: torch.Tensor, gold: torch.Tensor, filter_bits: torch.Tensor) -> None:
    for name, table in (("queries", queries), ("entity", entity)):
        if not isinstance(table, torch.Tensor) or table.dtype != torch.float32 or table.ndim != 2:
            raise TypeError(f"{name} must be a float32 tensor (n, d), got {describe(table)}")
    if queries.shape[1] != entity.shape[1]:
        raise ValueError(f"queries and entity must share d, got {queries.shape[1]} and {entity.shape[1]}")
    if not isinstance(gold, torch.Tensor) or gold.dtype != torch.long or gold.shape != queries.shape[:1]:
        raise ValueError(
            f"gold must be a long tensor (B,) = ({len(queries)},), one entity id a query; got {describe(gold)}"
        )
    if len(gold):
        low, high = int(gold.min()), int(gold.max())
        if low < 0 or high >= len(entity):
            raise ValueError(f"gold holds unknown entity id {low if low < 0 else high}; ids run 0..{len(entity) - 1}")
    _check_bits(filter_bits, len(entity), len(queries))
    devices = {t.device for t in (queries, entity, gold, filter_bits)}
    if len(devices) > 1:
        raise ValueError(
            f"queries, entity, gold and filter_bits must be on one device, got {sorted(map(str, devices))}"
        )


# -------------------------------------------------------------------------------------------- reference


def kg_rank_counts_reference(
    queries: torch.Tensor, entity: torch.Tensor, gold: torch.Tensor, filter_bits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch reference of :func:`kg_rank_counts`: builds ``q @ E.T`` ``(B, E)``, then counts."""
    _check_inputs(queries, entity, gold, filter_bits)
    scores = queries @ entity.T  # (B, E)
    gold_scores = scores.gather(1, gold[:, None])
    candidates = ~unpack_bitmask(filter_bits, len(entity))
    candidates.scatter_(1, gold[:, None], False)
    nan = scores.isnan() | gold_scores.isnan()
    higher = (((scores > gold_scores) | nan) & candidates).sum(1, dtype=torch.int32)
    ties = ((scores == gold_scores) & candidates).sum(1, dtype=torch.int32)
    return higher, ties


# ------------------------------------------------------------------------------------------------ Triton


@jit
def _rank_kernel(
    q_ptr,
    ent_ptr,
    gold_ptr,
    bits_ptr,
    higher_ptr,
    ties_ptr,
    n_queries,
    n_entities,
    dim,
    q_stride,
    ent_stride,
    bits_stride,
    BLOCK_B: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    N_TILES: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < n_queries
    gold = tl.load(gold_ptr + rows, mask=row_ok, other=0)
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < dim
    tile_ok = row_ok[:, None] & col_ok[None, :]
    q = tl.load(q_ptr + rows[:, None] * q_stride + cols[None, :], mask=tile_ok, other=0.0)  # (BLOCK_B, BLOCK_D)

    # The gold scores, through tl.dot like the candidates' (the diagonal of q @ E[gold].T).
    g = tl.load(ent_ptr + gold[:, None] * ent_stride + cols[None, :], mask=tile_ok, other=0.0)
    gold_tile = tl.dot(q, tl.trans(g), input_precision="ieee")
    diagonal = tl.arange(0, BLOCK_B)[:, None] == tl.arange(0, BLOCK_B)[None, :]
    gold_score = tl.sum(tl.where(diagonal, gold_tile, 0.0), axis=1)
    gold_nan = gold_score != gold_score

    higher = tl.zeros((BLOCK_B,), tl.int32)
    ties = tl.zeros((BLOCK_B,), tl.int32)
    for tile in range(N_TILES):  # a compile-time trip count: see softmax.py on the interpreter
        ents = tile * BLOCK_N + tl.arange(0, BLOCK_N)
        ent_ok = ents < n_entities
        E_t = tl.load(
            ent_ptr + ents[None, :] * ent_stride + cols[:, None], mask=col_ok[:, None] & ent_ok[None, :], other=0.0
        )
        scores = tl.dot(q, E_t, input_precision="ieee")  # (BLOCK_B, BLOCK_N)
        words = tl.load(
            bits_ptr + rows[:, None] * bits_stride + (ents // 32)[None, :],
            mask=row_ok[:, None] & ent_ok[None, :],
            other=0,
        )
        filtered = ((words >> (ents % 32)[None, :]) & 1) != 0
        candidate = ent_ok[None, :] & (ents[None, :] != gold[:, None]) & (filtered == 0)
        above = (scores > gold_score[:, None]) | (scores != scores) | gold_nan[:, None]
        higher += tl.sum((above & candidate).to(tl.int32), axis=1)
        ties += tl.sum(((scores == gold_score[:, None]) & candidate).to(tl.int32), axis=1)
    tl.store(higher_ptr + rows, higher, mask=row_ok)
    tl.store(ties_ptr + rows, ties, mask=row_ok)


def _launch_config(dim: int, num_entities: int) -> dict[str, Any]:
    block_d = max(16, triton.next_power_of_2(dim))
    block_n = 64 if block_d <= 128 else 32
    block_b = 32 if block_d <= 256 else 16
    return {
        "BLOCK_B": block_b,
        "BLOCK_D": block_d,
        "BLOCK_N": block_n,
        "N_TILES": triton.cdiv(num_entities, block_n),
        "num_warps": 4,
    }


def kg_rank_counts_triton(
    queries: torch.Tensor, entity: torch.Tensor, gold: torch.Tensor, filter_bits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Triton kernel behind :func:`kg_rank_counts` (CUDA tensors, or any under ``TRITON_INTERPRET=1``)."""
    _check_inputs(queries, entity, gold, filter_bits)
    B = len(queries)
    higher = torch.zeros(B, dtype=torch.int32, device=entity.device)
    ties = torch.zeros(B, dtype=torch.int32, device=entity.device)
    if B == 0:
        return higher, ties
    queries, entity = queries.detach(), entity.detach()
    if queries.stride(1) != 1:
        queries = queries.contiguous()
    if entity.stride(1) != 1:
        entity = entity.contiguous()
    gold, filter_bits = gold.contiguous(), filter_bits.contiguous()
    dim = entity.shape[1]
    config = _launch_config(dim, len(entity))
    grid = (triton.cdiv(B, config["BLOCK_B"]),)
    with torch.cuda.device_of(entity):
        _rank_kernel[grid](
            queries,
            entity,
            gold,
            filter_bits,
            higher,
            ties,
            B,
            len(entity),
            dim,
            queries.stride(0),
            entity.stride(0),
            filter_bits.stride(0),
            **config,
        )
    return higher, ties


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[Any, ...]:
    """Benchmark inputs: ``size`` entities, d = 200, a batch of 1024 query vectors (float32 whatever ``dtype``)."""
    generator = torch.Generator().manual_seed(0)
    B = 1024
    queries = torch.randn(B, 200, generator=generator)
    entity = torch.randn(size, 200, generator=generator)
    gold = torch.randint(size, (B,), generator=generator)
    known = torch.rand(B, size, generator=generator) < 0.001  # a few other answers per query
    return queries.to(device), entity.to(device), gold.to(device), pack_bitmask(known).to(device)


KG_RANK = register(
    KernelSpec(
        name="kg_rank",
        reference=kg_rank_counts_reference,
        triton=kg_rank_counts_triton,
        make_inputs=_make_inputs,
        sizes=(1_000, 14_541, 100_000),
        atol=0.0,
        rtol=0.0,
    )
)


def kg_rank_counts(
    queries: torch.Tensor,
    entity: torch.Tensor,
    gold: torch.Tensor,
    filter_bits: torch.Tensor,
    *,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Filtered rank counts of bilinear link prediction, without the ``(B, E)`` score matrix.

    ``queries``: float32 ``(B, d)``, the query vectors ``q`` with ``score(b, e) = <q_b, entity_e>`` (built by
    the model: ``h * r`` for DistMult's tail queries, SEEK's query vector, ...); ``entity``: float32
    ``(E, d)``; ``gold``: long ``(B,)``, the entity to rank for each query; ``filter_bits``: int32
    ``(B, ceil(E / 32))``, the other known answers to leave out (module docstring). Returns int32
    ``(higher, ties)``, each ``(B,)``; the realistic rank is ``higher + 1 + ties / 2``. ``backend`` as for
    every kernel (:mod:`reprobook.kernels.registry`).
    """
    result: tuple[torch.Tensor, torch.Tensor] = KG_RANK(queries, entity, gold, filter_bits, backend=backend)
    return result
