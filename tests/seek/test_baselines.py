"""The pykeen anchor: same split, same real-parameter budget, our evaluator (slow: pykeen imports in seconds)."""

from __future__ import annotations

import math

import pytest
import torch

from reprobook.data.kg import load_kg
from reprobook.seek import SEEKScores
from reprobook.seek.baselines import PykeenConfig, PykeenModel, PykeenResult, train_pykeen, triples_factory
from reprobook.train import History


@pytest.mark.slow
def test_pykeen_models_train_on_our_split_with_our_budget() -> None:
    graph = load_kg("nations")
    factory = triples_factory(graph)
    assert torch.equal(factory.mapped_triples, graph.train)
    for name in ("DistMult", "ComplEx", "RotatE"):
        result = train_pykeen(PykeenConfig(model=name, dim=16, num_epochs=2, batch_size=256), graph)
        assert isinstance(result, PykeenResult) and isinstance(result.model, PykeenModel)
        assert result.num_parameters == 16 * (graph.num_entities + graph.num_relations), name
        assert isinstance(result.test, SEEKScores) and 0 < result.test.mrr <= 1 and result.seconds_per_epoch > 0
        assert result.test.label == f"pykeen {name}" == result.config.label
        assert isinstance(result.history, History) and len(result.history["loss"]) == 2 and result.seconds > 0
        scores = result.model.score_all(graph.test[:5], "head")
        assert scores.shape == (5, graph.num_entities)
        assert result.model.training  # evaluation gave the mode back


BAD_VALUES = [
    ("model", "TransE"),
    ("dim", 0),
    ("num_epochs", 0),
    ("batch_size", 0),
    ("lr", math.nan),
    ("lr", 0.0),
    ("num_negatives", 0),
    ("seed", -1),
    ("seed", 1.5),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_pykeen_config(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        PykeenConfig(**{field: value})  # type: ignore[arg-type]


def test_complex_models_need_an_even_budget() -> None:
    with pytest.raises(ValueError, match="must be even"):
        PykeenConfig(model="ComplEx", dim=15)
