from __future__ import annotations

import pytest
import torch

from reprobook.data.kg import load_kg
from reprobook.kernels import unpack_bitmask
from reprobook.metrics import (
    TripleFilter,
    bleu,
    cer,
    filter_bitmask,
    filtered_ranks,
    ranking_metrics,
    realistic_ranks,
    wer,
)

# --------------------------------------------------------------------------------------------- text


def test_bleu_perfect_and_partial() -> None:
    refs = ["the cat sat on the mat today", "a dog ran in the park all day"]
    assert bleu(refs, refs) == pytest.approx(100.0)
    partial = bleu(["the cat sat on a mat today", "a dog ran in the park all day"], refs)
    assert 30.0 < partial < 100.0
    assert bleu(["zzz yyy xxx www vvv", "qqq ppp ooo nnn mmm"], refs) == pytest.approx(0.0, abs=1e-6)


def test_bleu_matches_hand_computed_value() -> None:
    # One sentence of 8 tokens, one substitution, no brevity penalty.
    # n-gram precisions 7/8, 5/7, 3/6, 1/5 -> BLEU = 100 * (their product) ** (1/4).
    expected = 100 * (7 / 8 * 5 / 7 * 3 / 6 * 1 / 5) ** 0.25
    assert bleu(["a b c d x f g h"], ["a b c d e f g h"]) == pytest.approx(expected, rel=1e-6)


def test_text_metrics_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        bleu(["a"], ["a", "b"])
    with pytest.raises(TypeError, match="single string"):
        bleu("a cat", "a cat")
    with pytest.raises(ValueError, match="empty"):
        wer([], [])


# -------------------------------------------------------------------------------------------- speech


def test_wer_known_examples() -> None:
    assert wer(["the cat sat"], ["the cat sat"]) == 0.0
    assert wer(["the bat sat"], ["the cat sat"]) == pytest.approx(1 / 3)  # one substitution
    assert wer(["the cat"], ["the cat sat"]) == pytest.approx(1 / 3)  # one deletion
    assert wer(["the big cat sat down"], ["the cat sat"]) == pytest.approx(2 / 3)  # two insertions
    assert wer(["a b c d"], ["x"]) == pytest.approx(4.0)  # can exceed 1
    # Corpus level: errors and reference words are summed before dividing (1 + 0) / (2 + 4).
    assert wer(["a x", "b c d e"], ["a b", "b c d e"]) == pytest.approx(1 / 6)


def test_cer_known_examples() -> None:
    assert cer(["kitten"], ["sitting"]) == pytest.approx(3 / 7)
    assert cer(["ab cd"], ["abcd"]) == pytest.approx(1 / 4)  # the space is an insertion
    assert cer([""], ["abc"]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty"):
        cer(["abc"], [""])


# -------------------------------------------------------------------------------- knowledge graphs


def test_realistic_rank_of_ties() -> None:
    # Target index 0 scores 2.0: one candidate above it, two tied with it.
    scores = torch.tensor([[2.0, 3.0, 2.0, 2.0, 1.0]])
    # optimistic 2, pessimistic 4 -> realistic 3
    assert realistic_ranks(scores, torch.tensor([0])).tolist() == [3.0]
    assert realistic_ranks(scores, torch.tensor([1])).tolist() == [1.0]
    assert realistic_ranks(scores, torch.tensor([4])).tolist() == [5.0]


def test_constant_scores_rank_in_the_middle() -> None:
    num_entities = 14
    ranks = realistic_ranks(torch.zeros(6, num_entities), torch.arange(6))
    assert ranks.tolist() == [7.5] * 6  # (E + 1) / 2
    metrics = ranking_metrics(ranks)
    assert metrics["mrr"] == pytest.approx(2 / 15)
    assert (metrics["hits@1"], metrics["hits@3"], metrics["hits@10"]) == (0.0, 0.0, 1.0)


def test_filtering_removes_other_true_answers() -> None:
    triples = torch.tensor([[0, 0, 1], [0, 0, 2], [0, 0, 3], [4, 1, 3]])
    known = TripleFilter.from_triples([triples[:2], triples[2:]], num_entities=5)
    assert known.tails[0, 0].tolist() == [1, 2, 3] and known.heads[1, 3].tolist() == [4]
    # Query (0, 0, ?) with true answer 1; the other true answers 2 and 3 score higher.
    scores = torch.tensor([[0.0, 0.5, 0.9, 0.8, 0.1]])
    query = triples[:1]
    assert known.mask(query, "tail").tolist() == [[False, False, True, True, False]]
    assert realistic_ranks(scores, query[:, 2]).tolist() == [3.0]
    assert filtered_ranks(scores, query, known, side="tail").tolist() == [1.0]
    # (?, 1, 3): no other true head, so nothing is filtered; entity 2 outscores the true head 4.
    head_scores = torch.tensor([[0.0, 0.0, 0.9, 0.0, 0.5]])
    assert filtered_ranks(head_scores, triples[3:], known, side="head").tolist() == [2.0]


def test_filter_bitmask_packs_the_filter_mask() -> None:
    """The kernel's bitmask holds exactly TripleFilter.mask, bit 31 (an int32's sign bit) and a 33rd entity included."""
    triples = torch.tensor([[0, 0, 31], [0, 0, 32], [0, 0, 5], [7, 1, 31], [0, 1, 31]])
    known = TripleFilter.from_triples([triples], num_entities=33)
    queries = torch.cat([triples, torch.tensor([[9, 1, 9]])])  # the last one has no known answer
    for side in ("tail", "head"):
        bits = filter_bitmask(known, queries, side)
        assert bits.dtype == torch.int32 and bits.shape == (6, 2)
        assert unpack_bitmask(bits, 33).equal(known.mask(queries, side))
    assert filter_bitmask(known, triples[2:3], "tail")[0, 0] == -(2**31)  # (0, 0, ?): 31 set, 5 is its own
    kg = load_kg("nations")  # a second filter of other sizes: the per-filter cache keeps them apart
    assert unpack_bitmask(filter_bitmask(kg.known_answers(), kg.test, "head"), 14).equal(
        kg.known_answers().mask(kg.test, "head")
    )
    with pytest.raises(ValueError, match=r"long tensor \(B, 3\)"):
        filter_bitmask(known, queries.float())
    with pytest.raises(ValueError, match="side='both'"):
        filter_bitmask(known, queries, "both")  # type: ignore[arg-type]


def test_perfect_and_constant_scorers_on_nations() -> None:
    kg = load_kg("nations")
    known = kg.known_answers()
    test = kg.test
    perfect = torch.nn.functional.one_hot(test[:, 2], kg.num_entities).float()
    perfect_metrics = ranking_metrics(filtered_ranks(perfect, test, known))
    assert perfect_metrics["mrr"] == 1.0 and perfect_metrics["hits@1"] == 1.0

    # A constant scorer ranks the target in the middle of the candidates left after filtering.
    all_triples = kg.all_triples().tolist()
    expected = []
    for h, r, t in test.tolist():
        others = {t2 for h2, r2, t2 in all_triples if (h2, r2) == (h, r) and t2 != t}
        candidates = kg.num_entities - len(others)
        expected.append(2 / (candidates + 1))
    constant = ranking_metrics(filtered_ranks(torch.zeros(len(test), kg.num_entities), test, known))
    assert constant["mrr"] == pytest.approx(sum(expected) / len(expected))
    assert constant["mrr"] < 0.5 and constant["hits@1"] == 0.0


def test_ranking_metrics_values() -> None:
    metrics = ranking_metrics(torch.tensor([1.0, 2.0, 4.0, 20.0]), ks=(1, 3, 10))
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 20) / 4)
    assert metrics["mean_rank"] == pytest.approx(27 / 4)
    assert (metrics["hits@1"], metrics["hits@3"], metrics["hits@10"]) == (0.25, 0.5, 0.75)


def test_ranking_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        realistic_ranks(torch.full((1, 3), float("nan")), torch.tensor([0]))
    with pytest.raises(ValueError, match="targets"):
        realistic_ranks(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"\(B, E\)"):
        realistic_ranks(torch.zeros(3), torch.tensor([0]))
    with pytest.raises(ValueError, match="non-empty"):
        ranking_metrics(torch.tensor([]))
    with pytest.raises(ValueError, match=">= 1"):
        ranking_metrics(torch.tensor([0.0]))
    known = TripleFilter.from_triples([torch.tensor([[0, 0, 1]])], num_entities=2)
    with pytest.raises(ValueError, match="side='both'"):
        known.mask(torch.tensor([[0, 0, 1]]), "both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="entity ids"):
        known.mask(torch.tensor([[0, 0, 2]]))
