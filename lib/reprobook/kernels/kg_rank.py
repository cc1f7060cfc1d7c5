"""Fused 1-vs-all SEEK scoring with filtered rank counting, never storing the ``(B, E)`` score matrix.

For each query triple ``b`` of a batch, with ``side="tail"`` (the question ``(h, r, ?)``)::

    q_b = seek_query(h_b, r_b)                     # d-vector, k segment products (the prologue)
    score_be = <q_b, E_e>  for every entity e      # one row of q @ E.T, a tile at a time
    higher_b = #{e : e not filtered, e != t_b, score_be > score_bt}
    ties_b   = #{e : e not filtered, e != t_b, score_be == score_bt}

and symmetrically for ``side="head"`` (``(?, r, t)``, the gold is ``h_b``). The realistic rank of
:func:`reprobook.metrics.realistic_ranks` is then ``higher + 1 + ties / 2`` (the optimistic rank is
``higher + 1``, the pessimistic one ``higher + ties + 1``). A NaN score, the gold's or a candidate's,
counts the candidate as *higher*: a diverged model gets the worst rank, never the best.

**The filter** is a bitmask: ``filter_bits`` is int32 ``(B, ceil(E / 32))``, bit ``e % 32`` of word
``e // 32`` of row ``b`` set when entity ``e`` is another known answer of query ``b`` (left out of
the counts). It costs ``E / 8`` bytes a query, 32 times less than one float32 score row;
:func:`filter_bitmask` builds it from a :class:`~reprobook.metrics.TripleFilter` without a dense mask.
The gold entity is never counted, whatever its bit says.

**The Triton kernel.** One program takes ``BLOCK_B`` queries. Its prologue gathers the ``k``
relation segments and the matching head (or tail) segments and builds ``q`` in registers: for
output column ``j`` of segment ``z = j // s`` and relation segment ``x``, the index rule gives the
head segment ``y = z`` (``x`` even) or ``(z - x) mod k`` (``x`` odd) and the sign rule its sign, so
the ``k^2`` segment products become ``k`` gathered multiply-adds of a ``(BLOCK_B, d)`` tile. The gold
scores come from ``tl.dot`` like every other score, so an entity tied with the gold compares equal
when the arithmetic is exact. Then the program walks over the entities ``BLOCK_N`` at a time:
``tl.dot`` of ``q`` with a tile of ``E``, a test against the gold score and the bitmask, and two
running counts. Memory is ``O(B)`` instead of ``O(B E)``. Float32 only, with IEEE float32 products
(no TF32, which would blur near-ties).

The PyTorch reference :func:`kg_rank_counts_reference` materialises ``q @ E.T`` and gives the same
counts; it is what runs on CPU (and in CI).
"""

from __future__ import annotations

import weakref
from typing import Any, Literal

import torch

from reprobook._validate import check_choice
from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register
from reprobook.metrics.ranking import TripleFilter
from reprobook.seek.scoring import check_segments, seek_query

SIDES = ("head", "tail")
WORD_BITS = 32


# ------------------------------------------------------------------------------------------------ filter


def pack_bitmask(mask: torch.Tensor) -> torch.Tensor:
    """A bool ``(B, E)`` mask as int32 words ``(B, ceil(E / 32))``: bit ``e % 32`` of word ``e // 32``."""
    if mask.dtype != torch.bool or mask.ndim != 2:
        raise ValueError(f"mask must be a bool tensor (B, E), got {mask.dtype} {tuple(mask.shape)}")
    B, E = mask.shape
    words = -(-E // WORD_BITS)
    padded = torch.zeros(B, words * WORD_BITS, dtype=torch.int64, device=mask.device)
    padded[:, :E] = mask.long()
    weights = torch.tensor([1 << i for i in range(WORD_BITS)], dtype=torch.int64, device=mask.device)
    return _to_int32((padded.view(B, words, WORD_BITS) * weights).sum(-1))


def unpack_bitmask(bits: torch.Tensor, num_entities: int) -> torch.Tensor:
    """The inverse of :func:`pack_bitmask`: int32 ``(B, W)`` -> bool ``(B, num_entities)``."""
    _check_bits(bits, num_entities)
    shifts = torch.arange(WORD_BITS, device=bits.device, dtype=torch.int32)
    unpacked = (bits[:, :, None] >> shifts) & 1  # arithmetic shift: bit 31 still reads as 1
    return unpacked.flatten(1)[:, :num_entities].bool()


def _to_int32(words: torch.Tensor) -> torch.Tensor:
    """int64 words in ``[0, 2^32)`` -> the int32 with the same bits."""
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def filter_bitmask(known: TripleFilter, triples: torch.Tensor, side: Literal["head", "tail"] = "tail") -> torch.Tensor:
    """The filter of the queries of ``triples`` ``(B, 3)``: int32 ``(B, ceil(E / 32))``, on CPU.

    Bits are set at every known answer of ``(h, r, ?)`` (``side="tail"``) or ``(?, r, t)``
    other than the triple's own; no ``(B, E)`` tensor is built. The packed answers of every query
    of ``known`` are computed once per filter and side, then gathered.
    """
    check_choice("side", side, SIDES)
    if triples.ndim != 2 or triples.shape[1] != 3 or triples.dtype != torch.long:
        raise ValueError(f"triples must be a long tensor (B, 3), got {triples.dtype} {tuple(triples.shape)}")
    index, packed = _packed_answers(known, side)
    triples = triples.cpu()
    h, r, t = triples.unbind(1)
    keys = zip(h.tolist(), r.tolist()) if side == "tail" else zip(r.tolist(), t.tolist())
    rows = torch.tensor([index.get(key, 0) for key in keys], dtype=torch.long)  # row 0 of packed: no answer
    words = packed[rows]  # (B, W) int64
    gold = t if side == "tail" else h  # the triple's own answer is not filtered
    if len(gold):
        column = (gold // WORD_BITS)[:, None]
        own = (torch.ones_like(gold) << (gold % WORD_BITS))[:, None]
        words.scatter_(1, column, words.gather(1, column) & ~own)
    return _to_int32(words)


_PACKED: dict[tuple[int, str], tuple[weakref.ref[TripleFilter], dict[tuple[int, int], int], torch.Tensor]] = {}


def _packed_answers(known: TripleFilter, side: str) -> tuple[dict[tuple[int, int], int], torch.Tensor]:
    """``(key -> row, packed)``: the answers of every query key of ``known`` as int64 words ``(1 + K, W)``."""
    cached = _PACKED.get((id(known), side))
    if cached is not None and cached[0]() is known:
        return cached[1], cached[2]
    answers = known.tails if side == "tail" else known.heads
    E, W = known.num_entities, -(-known.num_entities // WORD_BITS)
    index = {key: row for row, key in enumerate(answers, start=1)}
    packed = torch.zeros((1 + len(answers)) * W, dtype=torch.int64)
    if answers:
        lengths = torch.tensor([len(v) for v in answers.values()])
        cols = torch.cat(list(answers.values())).long()
        rows = torch.repeat_interleave(torch.arange(1, 1 + len(answers)), lengths)
        packed.index_add_(0, rows * W + cols // WORD_BITS, torch.ones_like(cols) << (cols % WORD_BITS))  # distinct bits
    if E and answers and int(torch.cat(list(answers.values())).max()) >= E:
        raise ValueError(f"the filter holds an entity id >= num_entities = {E}")
    for stale in [k for k, v in _PACKED.items() if v[0]() is None]:
        del _PACKED[stale]
    _PACKED[id(known), side] = (weakref.ref(known), index, packed.view(-1, W))
    return index, packed.view(-1, W)


# -------------------------------------------------------------------------------------------- checks


def _check_bits(bits: torch.Tensor, num_entities: int, batch: int | None = None) -> None:
    words = -(-num_entities // WORD_BITS)
    if not isinstance(bits, torch.Tensor) or bits.dtype != torch.int32 or bits.ndim != 2 or bits.shape[1] != words:
        got = f"{bits.dtype} {tuple(bits.shape)}" if isinstance(bits, torch.Tensor) else type(bits).__name__
        raise ValueError(
            f"filter_bits must be int32 (B, ceil(E / 32)) = (B, {words}) for E = {num_entities}, got {got}; "
            "build it with filter_bitmask or pack_bitmask"
        )
    if batch is not None and bits.shape[0] != batch:
        raise ValueError(f"filter_bits has {bits.shape[0]} rows for {batch} query triples")


def _check_inputs(
    entity: torch.Tensor,
    relation: torch.Tensor,
    triples: torch.Tensor,
    filter_bits: torch.Tensor,
    num_segments: int,
    side: str,
) -> None:
    check_choice("side", side, SIDES)
    for name, table in (("entity", entity), ("relation", relation)):
        if not isinstance(table, torch.Tensor) or table.dtype != torch.float32 or table.ndim != 2:
            got = f"{table.dtype} {tuple(table.shape)}" if isinstance(table, torch.Tensor) else type(table).__name__
            raise TypeError(f"{name} must be a float32 embedding table (n, d), got {got}")
    if entity.shape[1] != relation.shape[1]:
        raise ValueError(f"entity and relation tables must share d, got {entity.shape[1]} and {relation.shape[1]}")
    check_segments(entity.shape[1], num_segments)
    if triples.dtype != torch.long or triples.ndim != 2 or triples.shape[1] != 3:
        raise ValueError(f"triples must be a long tensor (B, 3), got {triples.dtype} {tuple(triples.shape)}")
    if len(triples):
        for column, count, kind in (
            (triples[:, [0, 2]], len(entity), "entity"),
            (triples[:, 1], len(relation), "relation"),
        ):
            low, high = int(column.min()), int(column.max())
            if low < 0 or high >= count:
                raise ValueError(f"triples holds unknown {kind} id {low if low < 0 else high}; ids run 0..{count - 1}")
    _check_bits(filter_bits, len(entity), len(triples))
    devices = {t.device for t in (entity, relation, triples, filter_bits)}
    if len(devices) > 1:
        raise ValueError(
            f"entity, relation, triples and filter_bits must be on one device, got {sorted(map(str, devices))}"
        )


# -------------------------------------------------------------------------------------------- reference


def kg_rank_counts_reference(
    entity: torch.Tensor,
    relation: torch.Tensor,
    triples: torch.Tensor,
    filter_bits: torch.Tensor,
    num_segments: int,
    side: str = "tail",
) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch reference of :func:`kg_rank_counts`: builds ``q @ E.T`` ``(B, E)``, then counts."""
    _check_inputs(entity, relation, triples, filter_bits, num_segments, side)
    h, r, t = triples.unbind(1)
    if side == "tail":
        q, gold = seek_query(entity[h], relation[r], num_segments, "tail"), t
    else:
        q, gold = seek_query(relation[r], entity[t], num_segments, "head"), h
    scores = q @ entity.T  # (B, E)
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
    ent_ptr,
    rel_ptr,
    trip_ptr,
    bits_ptr,
    higher_ptr,
    ties_ptr,
    n_queries,
    n_entities,
    dim,
    ent_stride,
    rel_stride,
    bits_stride,
    K: tl.constexpr,
    S: tl.constexpr,
    TAIL: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    N_TILES: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < n_queries
    h = tl.load(trip_ptr + rows * 3 + 0, mask=row_ok, other=0)
    r = tl.load(trip_ptr + rows * 3 + 1, mask=row_ok, other=0)
    t = tl.load(trip_ptr + rows * 3 + 2, mask=row_ok, other=0)
    other = h if TAIL else t  # the entity of the query
    gold = t if TAIL else h  # the entity to rank

    # Prologue: q = sum over the k relation segments x of sign * r_x * e_seg, per output column j.
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < dim
    seg, offset = cols // S, cols % S
    tile_ok = row_ok[:, None] & col_ok[None, :]
    q = tl.zeros((BLOCK_B, BLOCK_D), tl.float32)
    for x in tl.static_range(K):
        r_x = tl.load(rel_ptr + r[:, None] * rel_stride + (x * S + offset)[None, :], mask=tile_ok, other=0.0)
        if x % 2 == 0:  # w(x, y) = y: the same segment on both sides, sign +1
            e_seg = seg
            sign = tl.full((BLOCK_D,), 1.0, tl.float32)
        elif TAIL:  # output segment z = w(x, y); the head segment is y = (z - x) mod k
            e_seg = (seg - x + K) % K
            sign = tl.where(x + e_seg >= K, -1.0, 1.0)
        else:  # output segment y; the tail segment is w(x, y) = (x + y) mod k
            e_seg = (x + seg) % K
            sign = tl.where(x + seg >= K, -1.0, 1.0)
        e = tl.load(ent_ptr + other[:, None] * ent_stride + (e_seg * S + offset)[None, :], mask=tile_ok, other=0.0)
        q += sign[None, :] * r_x * e

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
    entity: torch.Tensor,
    relation: torch.Tensor,
    triples: torch.Tensor,
    filter_bits: torch.Tensor,
    num_segments: int,
    side: str = "tail",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Triton kernel behind :func:`kg_rank_counts` (CUDA tensors, or any under ``TRITON_INTERPRET=1``)."""
    _check_inputs(entity, relation, triples, filter_bits, num_segments, side)
    B = len(triples)
    higher = torch.zeros(B, dtype=torch.int32, device=entity.device)
    ties = torch.zeros(B, dtype=torch.int32, device=entity.device)
    if B == 0:
        return higher, ties
    entity, relation = entity.detach(), relation.detach()
    if entity.stride(1) != 1:
        entity = entity.contiguous()
    if relation.stride(1) != 1:
        relation = relation.contiguous()
    triples, filter_bits = triples.contiguous(), filter_bits.contiguous()
    dim = entity.shape[1]
    config = _launch_config(dim, len(entity))
    grid = (triton.cdiv(B, config["BLOCK_B"]),)
    with torch.cuda.device_of(entity):
        _rank_kernel[grid](
            entity,
            relation,
            triples,
            filter_bits,
            higher,
            ties,
            B,
            len(entity),
            dim,
            entity.stride(0),
            relation.stride(0),
            filter_bits.stride(0),
            K=num_segments,
            S=dim // num_segments,
            TAIL=side == "tail",
            **config,
        )
    return higher, ties


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[Any, ...]:
    """Benchmark inputs: ``size`` entities, 237 relations, d = 200, k = 8, a batch of 1024 queries."""
    generator = torch.Generator().manual_seed(0)
    entity = torch.randn(size, 200, generator=generator).to(device)
    relation = torch.randn(237, 200, generator=generator).to(device)
    B = 1024
    triples = torch.stack(
        [
            torch.randint(size, (B,), generator=generator),
            torch.randint(237, (B,), generator=generator),
            torch.randint(size, (B,), generator=generator),
        ],
        1,
    ).to(device)
    known = torch.rand(B, size, generator=generator) < 0.001  # a few other answers per query
    return entity, relation, triples, pack_bitmask(known).to(device), 8, "tail"


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
    entity: torch.Tensor,
    relation: torch.Tensor,
    triples: torch.Tensor,
    filter_bits: torch.Tensor,
    num_segments: int,
    side: str = "tail",
    *,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Filtered rank counts of SEEK link prediction, without the ``(B, E)`` score matrix.

    ``entity``: float32 ``(E, d)``; ``relation``: float32 ``(R, d)``; ``triples``: long ``(B, 3)``;
    ``filter_bits``: int32 ``(B, ceil(E / 32))`` (module docstring; :func:`filter_bitmask`);
    ``num_segments`` = ``k`` (1 is DistMult, 2 ComplEx); ``side``: ``"tail"`` ranks the tail of each
    triple, ``"head"`` its head. Returns int32 ``(higher, ties)``, each ``(B,)``; the realistic rank
    is ``higher + 1 + ties / 2``. ``backend`` as for every kernel (:mod:`reprobook.kernels.registry`).
    """
    result: tuple[torch.Tensor, torch.Tensor] = KG_RANK(
        entity, relation, triples, filter_bits, num_segments, side, backend=backend
    )
    return result
