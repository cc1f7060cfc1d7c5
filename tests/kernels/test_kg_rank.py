"""The fused scoring-and-ranking kernel against its PyTorch reference and against hand counts."""

from __future__ import annotations

import pytest
import torch

from reprobook.kernels import kg_rank_counts, pack_bitmask, unpack_bitmask
from reprobook.kernels.testing import assert_matches_reference
from reprobook.metrics import TripleFilter, filter_bitmask, filtered_ranks, realistic_ranks


def _problem(E: int, d: int, B: int, device: torch.device, p_filter: float = 0.2, seed: int = 0):
    """Random query vectors ``(B, d)``, entity table ``(E, d)``, gold ids ``(B,)`` and a filter bitmask."""
    generator = torch.Generator().manual_seed(seed)
    queries, entity = torch.randn(B, d, generator=generator), torch.randn(E, d, generator=generator)
    gold = torch.randint(E, (B,), generator=generator)
    bits = pack_bitmask(torch.rand(B, E, generator=generator) < p_filter)
    return queries.to(device), entity.to(device), gold.to(device), bits.to(device)


# E = 1 (a single entity), 65 and 130 (more than one 64-entity tile), d = 24, 48 and 200 (not powers of 2; 200
# takes the 32-entity tiles), B = 1 and 37 (not a multiple of the 32-query block).
@pytest.mark.parametrize("E, d, B", [(1, 24, 1), (65, 24, 37), (130, 48, 5), (70, 200, 33)], ids=str)
def test_matches_reference(E: int, d: int, B: int, device: torch.device) -> None:
    assert_matches_reference("kg_rank", *_problem(E, d, B, device), check_grad=False)


def test_empty_batch(device: torch.device) -> None:
    _, entity, _, _ = _problem(10, 8, 1, device)
    queries = torch.zeros(0, 8, device=device)
    gold = torch.zeros(0, dtype=torch.long, device=device)
    bits = torch.zeros(0, 1, dtype=torch.int32, device=device)
    higher, ties = kg_rank_counts(queries, entity, gold, bits, backend="triton")
    assert higher.shape == ties.shape == (0,)


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_ties_and_filter_by_hand(backend: str, device: torch.device) -> None:
    """Integer embeddings make every score exact, so ties are real ties whatever the summation order.

    With the query vector q = (1, 0) the score of entity e is e's first coordinate.
    """
    first = torch.tensor([3.0, 5.0, 3.0, 3.0, 1.0, 5.0, 3.0, 0.0])  # entity 0 is the gold, score 3
    entity = torch.stack([first, torch.zeros(8)], 1).to(device)
    queries = torch.tensor([[1.0, 0.0]], device=device)
    gold = torch.tensor([0], device=device)
    # Higher: entities 1 and 5 (score 5). Tied: 2, 3 and 6 (score 3). Filter out 5 and 3.
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, [3, 5]] = True
    higher, ties = kg_rank_counts(queries, entity, gold, pack_bitmask(mask).to(device), backend=backend)
    assert (higher.item(), ties.item()) == (1, 2)  # 1 above; 2 and 6 tied
    # The same counts give the realistic rank of reprobook.metrics: 1 + 1 + 2/2 = 3.
    expected = realistic_ranks((queries @ entity.T).cpu(), torch.tensor([0]), mask)
    assert higher.item() + 1 + ties.item() / 2 == expected.item() == 3.0
    # The gold's own bit is ignored; an all-zero model ties everything and ranks in the middle.
    mask[0, 0] = True
    zero = torch.zeros_like(entity)
    higher, ties = kg_rank_counts(queries, zero, gold, pack_bitmask(mask).to(device), backend=backend)
    assert (higher.item(), ties.item()) == (0, 5)  # 8 entities, minus the gold and two filtered


def test_duplicate_entities_tie_with_the_gold(device: torch.device) -> None:
    """Copies of the gold's embedding tie with it in both implementations (small-integer data: exact)."""
    generator = torch.Generator().manual_seed(1)
    entity = torch.randint(-3, 4, (40, 8), generator=generator).float()
    queries = torch.randint(-3, 4, (3, 8), generator=generator).float()
    gold = torch.tensor([5, 9, 5])
    entity[[20, 21, 39]] = entity[5].clone()  # three copies of entity 5
    bits = pack_bitmask(torch.zeros(3, 40, dtype=torch.bool))
    inputs = [x.to(device) for x in (queries, entity, gold, bits)]
    higher, ties = kg_rank_counts(*inputs, backend="triton")
    ref_higher, ref_ties = kg_rank_counts(*inputs, backend="reference")
    assert torch.equal(higher, ref_higher) and torch.equal(ties, ref_ties)
    assert ties[0] >= 3 and ties[2] >= 3


def test_nan_scores_rank_last(device: torch.device) -> None:
    queries, entity, gold, bits = _problem(20, 8, 4, device, p_filter=0.0)
    entity[3, 0] = float("nan")
    gold[0], gold[1] = 3, 4  # query 0's gold scores NaN; in query 1 entity 3 scores NaN
    for backend in ("triton", "reference"):
        higher, _ = kg_rank_counts(queries, entity, gold, bits, backend=backend)
        assert higher[0] == 19  # every other entity counts as higher
        assert higher[1] >= 1


def test_matches_the_foundation_filtered_ranks(device: torch.device) -> None:
    """Counts from a TripleFilter's bitmask give exactly reprobook.metrics.filtered_ranks."""
    generator = torch.Generator().manual_seed(4)
    entity, relation = torch.randn(50, 16, generator=generator), torch.randn(4, 16, generator=generator)
    known_triples = torch.stack(
        [
            torch.randint(50, (300,), generator=generator),
            torch.randint(4, (300,), generator=generator),
            torch.randint(50, (300,), generator=generator),
        ],
        1,
    )
    known = TripleFilter.from_triples([known_triples], 50)
    queries = known_triples[:40]
    for side, (slot, gold) in {"tail": (0, 2), "head": (2, 0)}.items():
        q = entity[queries[:, slot]] * relation[queries[:, 1]]  # DistMult: symmetric in head and tail
        bits = filter_bitmask(known, queries, side)
        higher, ties = kg_rank_counts(
            q.to(device), entity.to(device), queries[:, gold].to(device), bits.to(device), backend="triton"
        )
        expected = filtered_ranks(q @ entity.T, queries, known, side)
        torch.testing.assert_close(higher.cpu().double() + 1 + ties.cpu().double() / 2, expected)


def test_bitmask_round_trip_including_bit_31() -> None:
    mask = torch.zeros(3, 70, dtype=torch.bool)
    mask[0, 31] = mask[1, [0, 32, 63, 64, 69]] = True
    mask[2] = True
    bits = pack_bitmask(mask)
    assert bits.dtype == torch.int32 and bits.shape == (3, 3)
    assert bits[0, 0] == -(2**31)  # bit 31 is the sign bit of an int32 word
    assert unpack_bitmask(bits, 70).equal(mask)


def test_strided_tables(device: torch.device) -> None:
    queries, entity, gold, bits = _problem(33, 16, 9, device)
    wide = torch.randn(33, 40, device=device)
    wide[:, 5:21] = entity  # a column slice: row stride 40
    assert_matches_reference("kg_rank", queries, wide[:, 5:21], gold, bits, check_grad=False)
    assert_matches_reference("kg_rank", queries.T.contiguous().T, entity, gold, bits, check_grad=False)


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_bad_inputs_raise_clear_errors(backend: str, device: torch.device) -> None:
    queries, entity, gold, bits = _problem(40, 12, 4, device)
    with pytest.raises(ValueError, match="share d"):
        kg_rank_counts(queries[:, :8], entity, gold, bits, backend=backend)
    with pytest.raises(ValueError, match="int32"):
        kg_rank_counts(queries, entity, gold, bits.long(), backend=backend)
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        kg_rank_counts(queries, entity, gold, bits[:, :1], backend=backend)
    with pytest.raises(ValueError, match="rows for 4"):
        kg_rank_counts(queries, entity, gold, bits[:3], backend=backend)
    with pytest.raises(ValueError, match=r"gold must be a long tensor \(B,\)"):
        kg_rank_counts(queries, entity, gold[:3], bits, backend=backend)
    with pytest.raises(ValueError, match="gold must be a long"):
        kg_rank_counts(queries, entity, gold.int(), bits, backend=backend)
    bad = gold.clone()
    bad[0] = 40
    with pytest.raises(ValueError, match="unknown entity id 40"):
        kg_rank_counts(queries, entity, bad, bits, backend=backend)
    bad[0] = -1
    with pytest.raises(ValueError, match="unknown entity id -1"):
        kg_rank_counts(queries, entity, bad, bits, backend=backend)
    with pytest.raises(TypeError, match="entity must be a float32"):
        kg_rank_counts(queries, entity.double(), gold, bits, backend=backend)
    with pytest.raises(TypeError, match="queries must be a float32"):
        kg_rank_counts(queries[0], entity, gold, bits, backend=backend)
