"""The pykeen anchor: same split, same real-parameter budget, our evaluator (slow: pykeen imports in seconds)."""

from __future__ import annotations

import pytest
import torch

from reprobook.data.kg import load_kg
from reprobook.seek.anchor import PykeenConfig, knowledge_graph_from_pykeen, train_pykeen, triples_factory


@pytest.mark.slow
def test_pykeen_models_train_on_our_split_with_our_budget() -> None:
    graph = load_kg("nations")
    factory = triples_factory(graph)
    assert torch.equal(factory.mapped_triples, graph.train)
    for name in ("DistMult", "ComplEx", "RotatE"):
        result = train_pykeen(PykeenConfig(model=name, dim=16, num_epochs=1, batch_size=256), graph)
        assert result.num_parameters == 16 * (graph.num_entities + graph.num_relations), name
        assert 0 < result.test["mrr"] <= 1 and result.seconds_per_epoch > 0
        scores = result.model.score_all(graph.test[:5], "head")
        assert scores.shape == (5, graph.num_entities)


def test_bad_pykeen_config() -> None:
    with pytest.raises(ValueError, match="model='TransE'"):
        PykeenConfig(model="TransE")
    with pytest.raises(ValueError, match="must be even"):
        PykeenConfig(model="ComplEx", dim=15)


@pytest.mark.slow
def test_pykeen_datasets_convert_to_our_graphs() -> None:
    """Nations ships inside pykeen (no download): the conversion must agree with load_kg's reading of the files."""
    converted, ours = knowledge_graph_from_pykeen("Nations"), load_kg("nations")
    assert converted.counts() == ours.counts()
    assert converted.entities == ours.entities and converted.relations == ours.relations
    assert sorted(map(tuple, converted.train.tolist())) == sorted(map(tuple, ours.train.tolist()))
