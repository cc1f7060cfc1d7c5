"""The fused SEEK scoring-and-ranking kernel against its PyTorch reference and against hand counts."""

from __future__ import annotations

import pytest
import torch

from reprobook.kernels import filter_bitmask, kg_rank_counts, pack_bitmask, unpack_bitmask
from reprobook.kernels.testing import assert_matches_reference
from reprobook.metrics import TripleFilter, filtered_ranks, realistic_ranks
from reprobook.seek.scoring import seek_query


def _problem(E: int, R: int, d: int, B: int, device: torch.device, p_filter: float = 0.2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    entity, relation = torch.randn(E, d, generator=generator), torch.randn(R, d, generator=generator)
    triples = torch.stack(
        [
            torch.randint(E, (B,), generator=generator),
            torch.randint(R, (B,), generator=generator),
            torch.randint(E, (B,), generator=generator),
        ],
        1,
    )
    bits = pack_bitmask(torch.rand(B, E, generator=generator) < p_filter)
    return entity.to(device), relation.to(device), triples.to(device), bits.to(device)


# E = 1 (a single entity), 65 and 130 (more than one 64-entity tile), d = 24 and 48 (not powers of 2),
# B = 1 and 37 (not a multiple of the 32-query block).
@pytest.mark.parametrize("k", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("side", ["tail", "head"])
@pytest.mark.parametrize("E, R, d, B", [(1, 1, 24, 1), (65, 3, 24, 37), (130, 7, 48, 5)], ids=str)
def test_matches_reference(k: int, side: str, E: int, R: int, d: int, B: int, device: torch.device) -> None:
    inputs = _problem(E, R, d, B, device)
    assert_matches_reference("kg_rank", *inputs, k, side, check_grad=False)


def test_empty_batch(device: torch.device) -> None:
    entity, relation, _, _ = _problem(10, 2, 8, 1, device)
    triples = torch.zeros(0, 3, dtype=torch.long, device=device)
    bits = torch.zeros(0, 1, dtype=torch.int32, device=device)
    higher, ties = kg_rank_counts(entity, relation, triples, bits, 2, backend="triton")
    assert higher.shape == ties.shape == (0,)


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_ties_and_filter_by_hand(backend: str, device: torch.device) -> None:
    """Integer embeddings make every score exact, so ties are real ties whatever the summation order.

    DistMult (k = 1) with r = 1 scores tail e as <h, e>: with h = (1, 0) the score is e's first coordinate.
    """
    first = torch.tensor([3.0, 5.0, 3.0, 3.0, 1.0, 5.0, 3.0, 0.0])  # entity 0 is the gold, score 3
    entity = torch.stack([first, torch.zeros(8)], 1).to(device)
    entity[7] = torch.tensor([1.0, 0.0], device=device)  # the query's head: h = (1, 0)
    relation = torch.ones(1, 2, device=device)
    triples = torch.tensor([[7, 0, 0]], device=device)
    # Higher: entities 1 and 5 (score 5). Tied: 2, 3 and 6 (score 3). Filter out 5 and 3.
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, [3, 5]] = True
    higher, ties = kg_rank_counts(entity, relation, triples, pack_bitmask(mask).to(device), 1, backend=backend)
    assert (higher.item(), ties.item()) == (1, 2)  # 1 above; 2 and 6 tied
    # The same counts give the realistic rank of reprobook.metrics: 1 + 1 + 2/2 = 3.
    scores = (seek_query(entity[7:8], relation, 1) @ entity.T).cpu()
    expected = realistic_ranks(scores, torch.tensor([0]), mask)
    assert higher.item() + 1 + ties.item() / 2 == expected.item() == 3.0
    # The gold's own bit is ignored; an all-zero model ties everything and ranks in the middle.
    mask[0, 0] = True
    zero = torch.zeros_like(entity)
    higher, ties = kg_rank_counts(zero, relation, triples, pack_bitmask(mask).to(device), 1, backend=backend)
    assert (higher.item(), ties.item()) == (0, 5)  # 8 entities, minus the gold and two filtered


@pytest.mark.parametrize("k", [2, 4])
def test_duplicate_entities_tie_with_the_gold(k: int, device: torch.device) -> None:
    """Copies of the gold's embedding tie with it in both implementations (small-integer data: exact)."""
    generator = torch.Generator().manual_seed(1)
    entity = torch.randint(-3, 4, (40, 8), generator=generator).float()
    relation = torch.randint(-3, 4, (3, 8), generator=generator).float()
    triples = torch.tensor([[1, 0, 5], [2, 2, 9], [5, 1, 5]])
    entity[[20, 21, 39]] = entity[5].clone()  # three copies of entity 5
    bits = pack_bitmask(torch.zeros(3, 40, dtype=torch.bool))
    inputs = [x.to(device) for x in (entity, relation, triples, bits)]
    for side in ("tail", "head"):
        higher, ties = kg_rank_counts(*inputs, k, side, backend="triton")
        ref_higher, ref_ties = kg_rank_counts(*inputs, k, side, backend="reference")
        assert torch.equal(higher, ref_higher) and torch.equal(ties, ref_ties)
    _, ties = kg_rank_counts(*inputs, k, "tail", backend="triton")
    assert ties[0] >= 3 and ties[2] >= 3


def test_nan_scores_rank_last(device: torch.device) -> None:
    entity, relation, triples, bits = _problem(20, 2, 8, 4, device, p_filter=0.0)
    entity[3, 0] = float("nan")
    triples[0, 2], triples[1, 2] = 3, 4  # query 0's gold scores NaN; in query 1 entity 3 scores NaN
    for backend in ("triton", "reference"):
        higher, _ = kg_rank_counts(entity, relation, triples, bits, 2, backend=backend)
        assert higher[0] == 19  # every other entity counts as higher
        assert higher[1] >= 1


def test_matches_the_foundation_filtered_ranks(device: torch.device) -> None:
    """Counts from a TripleFilter's bitmask give exactly reprobook.metrics.filtered_ranks."""
    entity, relation, _, _ = _problem(50, 4, 16, 1, device, seed=3)
    generator = torch.Generator().manual_seed(4)
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
    for side in ("tail", "head"):
        bits = filter_bitmask(known, queries, side)
        higher, ties = kg_rank_counts(entity, relation, queries.to(device), bits.to(device), 4, side, backend="triton")
        a, b = (
            (entity[queries[:, 0]], relation[queries[:, 1]])
            if side == "tail"
            else (relation[queries[:, 1]], entity[queries[:, 2]])
        )
        scores = seek_query(a.cpu(), b.cpu(), 4, side) @ entity.cpu().T
        expected = filtered_ranks(scores, queries, known, side)
        torch.testing.assert_close(higher.cpu().double() + 1 + ties.cpu().double() / 2, expected)
        assert unpack_bitmask(bits, 50).equal(known.mask(queries, side))


def test_bitmask_round_trip_including_bit_31() -> None:
    mask = torch.zeros(3, 70, dtype=torch.bool)
    mask[0, 31] = mask[1, [0, 32, 63, 64, 69]] = True
    mask[2] = True
    bits = pack_bitmask(mask)
    assert bits.dtype == torch.int32 and bits.shape == (3, 3)
    assert bits[0, 0] == -(2**31)  # bit 31 is the sign bit of an int32 word
    assert unpack_bitmask(bits, 70).equal(mask)


def test_strided_tables(device: torch.device) -> None:
    entity, relation, triples, bits = _problem(33, 3, 16, 9, device)
    wide = torch.randn(33, 40, device=device)
    wide[:, 5:21] = entity  # a column slice: row stride 40
    assert_matches_reference("kg_rank", wide[:, 5:21], relation, triples, bits, 4, "tail", check_grad=False)


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_bad_inputs_raise_clear_errors(backend: str, device: torch.device) -> None:
    entity, relation, triples, bits = _problem(40, 3, 12, 4, device)
    with pytest.raises(ValueError, match="not divisible"):
        kg_rank_counts(entity, relation, triples, bits, 5, backend=backend)
    with pytest.raises(ValueError, match="k >= 1"):
        kg_rank_counts(entity, relation, triples, bits, 0, backend=backend)
    with pytest.raises(ValueError, match="int32"):
        kg_rank_counts(entity, relation, triples, bits.long(), 2, backend=backend)
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        kg_rank_counts(entity, relation, triples, bits[:, :1], 2, backend=backend)
    with pytest.raises(ValueError, match="rows for 4"):
        kg_rank_counts(entity, relation, triples, bits[:3], 2, backend=backend)
    bad = triples.clone()
    bad[0, 2] = 40
    with pytest.raises(ValueError, match="unknown entity id 40"):
        kg_rank_counts(entity, relation, bad, bits, 2, backend=backend)
    bad = triples.clone()
    bad[1, 1] = -1
    with pytest.raises(ValueError, match="unknown relation id -1"):
        kg_rank_counts(entity, relation, bad, bits, 2, backend=backend)
    with pytest.raises(TypeError, match="float32"):
        kg_rank_counts(entity.double(), relation, triples, bits, 2, backend=backend)
    with pytest.raises(ValueError, match="side"):
        kg_rank_counts(entity, relation, triples, bits, 2, "relation", backend=backend)
