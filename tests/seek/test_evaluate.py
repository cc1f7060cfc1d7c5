"""Filtered realistic ranks by hand, per relation and per pattern; direction accuracy; the explorer."""

from __future__ import annotations

import pytest
import torch

from reprobook.data.kg import KnowledgeGraph, family_graph, load_kg
from reprobook.metrics import filtered_ranks
from reprobook.seek import SEEK, SEEKScores, TransE, direction_accuracy, evaluate, metrics_by_pattern, rank_triples
from reprobook.seek.explorer import query_explorer, top_tails


def _hand_graph() -> tuple[KnowledgeGraph, SEEK]:
    """Six entities, one relation, DistMult (k = 1) with r = 1 and 1-d embeddings: f(h, r, t) = h * t."""
    names = tuple(f"e{i}" for i in range(6))
    train = torch.tensor([[0, 0, 1], [0, 0, 4]])
    test = torch.tensor([[0, 0, 2]])
    graph = KnowledgeGraph("hand", names, ("r",), train, torch.zeros(0, 3, dtype=torch.long), test)
    model = SEEK(6, 1, dim=1, num_segments=1)
    with torch.no_grad():
        model.entity.copy_(torch.tensor([[1.0], [3.0], [2.0], [2.0], [5.0], [2.0]]))
        model.relation.fill_(1.0)
    return graph, model


@pytest.mark.parametrize("backend", ["reference", None])
def test_filtered_ranks_with_ties_by_hand(backend: str | None) -> None:
    graph, model = _hand_graph()
    ranks = rank_triples(model, graph.test, graph.known_answers(), backend=backend)
    # Tail query (e0, r, ?): scores = embeddings [1, 3, 2, 2, 5, 2]; gold e2 scores 2.
    # e1 (3) and e4 (5) score higher but are known answers (train): filtered out.
    # e3 and e5 tie with the gold; e0 scores lower. Realistic rank = 1 + 0 + 2 / 2 = 2.
    assert ranks.tail.tolist() == [2.0]
    # Head query (?, r, e2): scores = 2 * [1, 3, 2, 2, 5, 2]; gold e0 scores 2, no other known head.
    # Higher: e1, e2, e3, e4, e5 (6, 4, 4, 10, 4) -> rank 6.
    assert ranks.head.tolist() == [6.0]
    metrics = ranks.metrics()
    assert metrics["mrr"] == pytest.approx((1 / 2 + 1 / 6) / 2)
    assert metrics["hits@3"] == 0.5 and metrics["hits@1"] == 0.0


def test_kernel_path_equals_the_generic_path() -> None:
    graph = load_kg("nations")
    model = SEEK(graph.num_entities, graph.num_relations, dim=16, num_segments=4, init_scale=1.0)
    ranks = rank_triples(model, graph.test, graph.known_answers(), batch_size=64)
    with torch.no_grad():
        for side in ("head", "tail"):
            expected = filtered_ranks(model.score_all(graph.test, side), graph.test, graph.known_answers(), side)
            torch.testing.assert_close(getattr(ranks, side), expected)


def test_all_zero_model_is_not_perfect() -> None:
    graph = load_kg("nations")
    model = SEEK(graph.num_entities, graph.num_relations, dim=8, num_segments=2, init_scale=0.0)
    assert evaluate(model, graph).mrr < 0.5  # ties take the middle rank, not the first


@pytest.mark.parametrize("model_name", ["seek", "transe"])
def test_evaluate_returns_scores_and_leaves_the_mode_alone(model_name: str) -> None:
    graph, model = _hand_graph()
    if model_name == "transe":
        model = TransE(6, 1, dim=4, init_scale=1.0)
    for training in (True, False):
        model.train(training)
        scores = evaluate(model, graph)
        assert model.training is training
        assert isinstance(scores, SEEKScores) and scores.label == ("DistMult" if model_name == "seek" else "TransE")
    ranks = rank_triples(model, graph.test, graph.known_answers()).metrics()
    assert (scores.mrr, scores.mean_rank, scores.hits_at_1, scores.hits_at_3, scores.hits_at_10) == tuple(
        ranks[key] for key in ("mrr", "mean_rank", "hits@1", "hits@3", "hits@10")
    )
    row = scores.row()
    assert row["method"] == scores.label and row["MRR"] == scores.mrr and row["Hits@10"] == scores.hits_at_10
    with pytest.raises(ValueError, match="split='dev'"):
        evaluate(model, graph, "dev")


def test_per_relation_and_per_pattern() -> None:
    graph = family_graph(num_families=3)
    model = SEEK(graph.num_entities, graph.num_relations, dim=8, num_segments=2, init_scale=1.0)
    ranks = rank_triples(model, graph.test, graph.known_answers())
    per_relation = ranks.per_relation(graph.relations)
    assert set(per_relation) <= set(graph.relations) and len(per_relation) >= 4
    patterns = metrics_by_pattern(ranks, graph)
    assert set(patterns) == {"symmetric", "antisymmetric", "composition"}
    with pytest.raises(ValueError, match="no known relation patterns"):
        metrics_by_pattern(ranks, load_kg("nations"))


def test_direction_accuracy() -> None:
    graph = family_graph(num_families=3)
    triples = graph.train
    distmult = SEEK(graph.num_entities, graph.num_relations, dim=8, num_segments=1, init_scale=1.0)
    assert direction_accuracy(distmult, triples, margin=1e-3) == 0.0  # f(h, r, t) = f(t, r, h) up to rounding
    complex_ = SEEK(graph.num_entities, graph.num_relations, dim=8, num_segments=2, init_scale=1.0)
    with torch.no_grad():
        complex_.relation[:, :4] = 0  # purely imaginary relations: f(t, r, h) = -f(h, r, t)
        scores = complex_.score(triples)
    for margin in (0.0, 1.0):  # f - (-f) > margin  <=>  f > margin / 2
        expected = (scores > margin / 2).double().mean().item()
        assert direction_accuracy(complex_, triples, margin) == pytest.approx(expected)
        assert 0.1 < expected < 0.9


def test_explorer() -> None:
    graph, model = _hand_graph()
    rows = top_tails(model, graph, "e0", "r", top=3)
    assert [row["tail"] for row in rows] == ["e4", "e1", rows[2]["tail"]] and rows[2]["tail"] in ("e2", "e3", "e5")
    assert rows[0]["known"] == "train" and rows[0]["score"] == pytest.approx(5.0)
    widget = query_explorer(model, graph, [("e0", "r"), ("e1", "r")], top=2, title="demo")
    markup = widget._repr_html_()
    assert markup.count("<option") == 2 and markup.count("<table") == 2 and "display:none" in markup
    with pytest.raises(ValueError, match="unknown entity"):
        top_tails(model, graph, "nobody", "r")
    with pytest.raises(ValueError, match="unknown relation"):
        query_explorer(model, graph, [("e0", "q")])
