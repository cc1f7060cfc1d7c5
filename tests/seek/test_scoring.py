"""The SEEK score: special cases, symmetry and antisymmetry, the query form, and bad input."""

from __future__ import annotations

import pytest
import torch

from reprobook.seek import (
    SEEK,
    TransE,
    complex_score,
    distmult_score,
    seek_query,
    seek_score,
    segment_tables,
    transe_score,
)
from reprobook.seek.scoring import negacyclic_shift


def _triple(k: int, d: int | None = None, batch: int = 6, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    d = d or 6 * k
    return tuple(torch.randn(batch, d, generator=generator, dtype=torch.float64) for _ in range(3))


def _zero_segments(r: torch.Tensor, k: int, parity: int) -> torch.Tensor:
    """``r`` with its even (``parity=0``) or odd (``parity=1``) segments set to 0."""
    segments = r.clone().unflatten(-1, (k, -1))
    segments[..., parity::2, :] = 0
    return segments.flatten(-2)


def test_k1_is_distmult_and_k2_is_complex() -> None:
    h, r, t = _triple(1, d=10)
    torch.testing.assert_close(seek_score(h, r, t, 1), distmult_score(h, r, t), rtol=1e-12, atol=1e-12)
    h, r, t = _triple(2, d=10)
    torch.testing.assert_close(seek_score(h, r, t, 2), complex_score(h, r, t), rtol=1e-12, atol=1e-12)
    # ... and not for other k: the special cases are not an accident of the data.
    assert not torch.allclose(seek_score(h, r, t, 5), complex_score(h, r, t))


def test_k2_tables_are_complex_multiplication() -> None:
    sign, index = segment_tables(2)
    assert sign.tolist() == [[1, 1], [1, -1]] and index.tolist() == [[0, 1], [1, 0]]
    sign, index = segment_tables(4)  # row x = 1 (odd): w = (1 + y) mod 4, negative where 1 + y >= 4
    assert index[1].tolist() == [1, 2, 3, 0] and sign[1].tolist() == [1, 1, 1, -1]
    assert index[2].tolist() == [0, 1, 2, 3] and sign[2].tolist() == [1, 1, 1, 1]  # x = 2 is even


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 8])
def test_symmetric_when_odd_segments_are_zero(k: int) -> None:
    h, r, t = _triple(k)
    r = _zero_segments(r, k, parity=1)
    torch.testing.assert_close(seek_score(h, r, t, k), seek_score(t, r, h, k), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_not_symmetric_in_general(k: int) -> None:
    h, r, t = _triple(k)
    assert (seek_score(h, r, t, k) - seek_score(t, r, h, k)).abs().min() > 1e-6


def test_antisymmetry_with_even_segments_zero_holds_for_k2_only() -> None:
    h, r, t = _triple(2)
    r2 = _zero_segments(r, 2, parity=0)
    torch.testing.assert_close(seek_score(h, r2, t, 2), -seek_score(t, r2, h, 2), rtol=1e-12, atol=1e-12)
    for k in (4, 6, 8):  # the published formula is not skew-symmetric for k >= 4 without a tie ...
        h, r, t = _triple(k)
        rk = _zero_segments(r, k, parity=0)
        assert (seek_score(h, rk, t, k) + seek_score(t, rk, h, k)).abs().max() > 1e-3


@pytest.mark.parametrize("k", [4, 6, 8])
def test_antisymmetry_needs_tied_odd_segments(k: int) -> None:
    """... and it is once r_x = r_{k-x} for odd x (x and k - x swap roles when h and t swap)."""
    h, r, t = _triple(k)
    segments = _zero_segments(r, k, parity=0).unflatten(-1, (k, -1))
    for x in range(1, k // 2, 2):
        segments[..., k - x, :] = segments[..., x, :]
    tied = segments.flatten(-2)
    torch.testing.assert_close(seek_score(h, tied, t, k), -seek_score(t, tied, h, k), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8, 16])
def test_query_vectors_reproduce_the_score(k: int) -> None:
    h, r, t = _triple(k, d=4 * k)
    f = seek_score(h, r, t, k)
    for side, (a, b, e) in {"tail": (h, r, t), "head": (r, t, h), "relation": (h, t, r)}.items():
        torch.testing.assert_close((seek_query(a, b, k, side) * e).sum(-1), f, rtol=1e-10, atol=1e-10)


def test_negacyclic_shift() -> None:
    e = torch.arange(4.0)[:, None]  # k = 4 segments of size 1: [0, 1, 2, 3]
    assert negacyclic_shift(e, 1).flatten().tolist() == [-3, 0, 1, 2]
    assert negacyclic_shift(e, 3).flatten().tolist() == [-1, -2, -3, 0]
    assert negacyclic_shift(negacyclic_shift(e, 3), -3).equal(e)
    assert negacyclic_shift(e, 4).equal(-e)
    # k = 2, x = 1: multiplication by i of (re, im) = (2, 5) gives (-5, 2).
    assert negacyclic_shift(torch.tensor([[2.0], [5.0]]), 1).flatten().tolist() == [-5, 2]


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_one_vs_all_equals_per_triple_scores(k: int) -> None:
    model = SEEK(num_entities=11, num_relations=3, dim=16, num_segments=k, init_scale=1.0)
    triples = torch.tensor([[0, 1, 2], [5, 0, 5], [10, 2, 3]])
    with torch.no_grad():
        for side, slot in (("tail", 2), ("head", 0)):
            all_scores = model.score_all(triples, side)
            assert all_scores.shape == (3, 11)
            for e in range(11):
                replaced = triples.clone()
                replaced[:, slot] = e
                torch.testing.assert_close(all_scores[:, e], model.score(replaced))
                lit = seek_score(
                    model.entity[replaced[:, 0]], model.relation[replaced[:, 1]], model.entity[replaced[:, 2]], k
                )
                torch.testing.assert_close(all_scores[:, e], lit, rtol=1e-5, atol=1e-5)
        relations = torch.tensor([[2, 0], [1, 1], [0, 2]])
        by_relation = model.score_candidates(triples, relations, "relation")
        for j in range(2):
            replaced = triples.clone()
            replaced[:, 1] = relations[:, j]
            torch.testing.assert_close(by_relation[:, j], model.score(replaced))


def test_small_and_large_tables_score_candidates_alike() -> None:
    """Sampled candidates of a small table go through one GEMM; of a large one through gathers."""
    model = SEEK(num_entities=300, num_relations=2, dim=8, num_segments=4, init_scale=1.0)
    triples = torch.tensor([[0, 1, 2], [5, 0, 7]])
    few = torch.randint(300, (2, 3))  # 32 * 3 < 300: the gather path
    many = torch.cat([few, torch.randint(300, (2, 7))], 1)  # 32 * 10 >= 300: the GEMM path
    with torch.no_grad():
        torch.testing.assert_close(
            model.score_candidates(triples, many, "tail")[:, :3], model.score_candidates(triples, few, "tail")
        )


def test_transe_one_vs_all_and_score() -> None:
    model = TransE(num_entities=7, num_relations=2, dim=4, margin=1.5, init_scale=1.0)
    triples = torch.tensor([[0, 1, 2], [6, 0, 6]])
    with torch.no_grad():
        h, r, t = model.entity[triples[:, 0]], model.relation[triples[:, 1]], model.entity[triples[:, 2]]
        torch.testing.assert_close(model.score(triples), 1.5 - (h + r - t).abs().sum(-1))
        torch.testing.assert_close(model.score(triples), transe_score(h, r, t, margin=1.5))
        all_tails, all_heads = model.score_all(triples, "tail"), model.score_all(triples, "head")
        for e in range(7):
            torch.testing.assert_close(
                all_tails[:, e],
                model.score(triples.index_put((torch.arange(2), torch.tensor([2, 2])), torch.tensor(e))),
            )
            torch.testing.assert_close(
                all_heads[:, e],
                model.score(triples.index_put((torch.arange(2), torch.tensor([0, 0])), torch.tensor(e))),
            )


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(ValueError, match="dim=10 is not divisible by num_segments=4"):
        SEEK(5, 2, dim=10, num_segments=4)
    for k in (0, -1):
        with pytest.raises(ValueError, match="k >= 1"):
            SEEK(5, 2, dim=8, num_segments=k)
        with pytest.raises(ValueError, match="k >= 1"):
            seek_score(*_triple(1, d=8), k)
    with pytest.raises(ValueError, match="not divisible"):
        seek_query(torch.ones(3, 10), torch.ones(3, 10), 3)
    with pytest.raises(ValueError, match="share their last dimension"):
        seek_score(torch.ones(8), torch.ones(8), torch.ones(4), 2)
    model = SEEK(5, 2, dim=8, num_segments=2)
    with pytest.raises(ValueError, match="unknown entity id 5"):
        model.score(torch.tensor([[0, 1, 5]]))
    with pytest.raises(ValueError, match="unknown relation id 2"):
        model.score_all(torch.tensor([[0, 2, 1]]))
    with pytest.raises(ValueError, match="unknown entity id -1"):
        model.score_all(torch.tensor([[-1, 0, 1]]), "head")
    with pytest.raises(ValueError, match="unknown relation id 9"):
        model.score_candidates(torch.tensor([[0, 0, 1]]), torch.tensor([[9]]), "relation")
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        model.score(torch.tensor([[0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="side"):
        model.score_all(torch.tensor([[0, 0, 1]]), "relation")
    with pytest.raises(ValueError, match="even dimension"):
        complex_score(torch.ones(3), torch.ones(3), torch.ones(3))
