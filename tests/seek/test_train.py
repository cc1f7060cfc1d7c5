"""Training: the loss is the official one (checked term by term), a tiny graph is fitted, configs are checked."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reprobook.data.kg import family_graph, load_kg
from reprobook.seek import SEEK, SEEKConfig, SEEKResult, SEEKScores, TransE, build_model, evaluate, logistic_loss, train
from reprobook.seek.train import epoch_seconds


def _brute_force_loss(model, batch, config, corruptions) -> torch.Tensor:
    """The official objective written triple by triple: logistic loss + lambda / (2 d) ||e||^2 per use."""

    def term(h: int, r: int, t: int, label: int) -> torch.Tensor:
        triple = torch.tensor([[h, r, t]])
        e = [model.entity[h], model.relation[r], model.entity[t]]
        return F.softplus(-label * model.score(triple))[0] + config.l2 / (2 * model.dim) * sum(
            v.pow(2).sum() for v in e
        )

    total = torch.zeros(())
    for row, (h, r, t) in enumerate(batch.tolist()):
        total = total + term(h, r, t, +1)
        for slot, candidates in corruptions.items():
            for c in candidates[row]:
                triple = [h, r, t]
                triple[slot] = c
                total = total + term(*triple, -1)
    return total


@pytest.mark.parametrize("model_name, k", [("seek", 1), ("seek", 4), ("transe", 1)])
def test_negative_sampling_loss_matches_the_official_objective(model_name: str, k: int) -> None:
    config = SEEKConfig(model=model_name, dim=8, num_segments=k, num_negatives=3, l2=0.5, init_scale=0.5, num_epochs=1)
    graph = family_graph(num_families=1)
    model = build_model(config, graph)
    batch = graph.train[:4]
    loss = logistic_loss(model, batch, config, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)  # the same draws, in the order logistic_loss makes them
    corruptions = {
        slot: torch.randint(count, (4, 3), generator=generator).tolist()
        for slot, count in ((2, graph.num_entities), (0, graph.num_entities), (1, graph.num_relations))
    }
    torch.testing.assert_close(loss, _brute_force_loss(model, batch, config, corruptions))


def test_one_to_n_loss_uses_every_corruption() -> None:
    config = SEEKConfig(dim=8, num_segments=2, loss="1-n", l2=0.3, init_scale=0.5, num_epochs=1)
    graph = load_kg("nations")
    model = build_model(config, graph)
    batch = graph.train[:2]
    loss = logistic_loss(model, batch, config)
    corruptions = {
        slot: [[c for c in range(count) if c != int(row[slot])] for row in batch]
        for slot, count in ((0, graph.num_entities), (2, graph.num_entities), (1, graph.num_relations))
    }
    torch.testing.assert_close(loss, _brute_force_loss(model, batch, config, corruptions), rtol=1e-5, atol=1e-5)


def test_tiny_graph_is_fitted() -> None:
    graph = family_graph(num_families=2)
    result = train(
        SEEKConfig(dim=16, num_segments=4, num_epochs=60, batch_size=64, lr=0.3, eval_every=20), graph, progress=False
    )
    assert isinstance(result, SEEKResult) and isinstance(result.test, SEEKScores)
    losses = result.history["loss"]
    assert losses[-1] < 0.25 * losses[0]
    steps, curve = result.history.curve("valid_mrr")
    assert [step / result.steps_per_epoch for step in steps] == [20, 40, 60]
    assert result.seconds_per_epoch == pytest.approx(result.seconds / 60) and result.seconds > 0
    # The kept model is the best checkpoint on validation MRR.
    assert result.best_epoch == 20 * (1 + curve.index(max(curve))) and result.valid.mrr == max(curve)
    assert result.metrics == {"valid_mrr": result.valid.mrr, "test_mrr": result.test.mrr}
    assert result.num_parameters == 16 * (graph.num_entities + graph.num_relations)
    assert result.model.training  # evaluation during training gave the mode back
    # The training triples themselves are ranked near the top.
    assert evaluate(result.model, graph, "train").mrr > 0.6


def test_without_selection_the_last_model_is_kept() -> None:
    graph = family_graph(num_families=1)
    result = train(
        SEEKConfig(dim=8, num_epochs=3, batch_size=32, eval_every=0), graph, progress=False, evaluate_test=False
    )
    assert result.history.evaluations == [] and result.best_epoch == 3 and result.test is None
    assert result.valid.mrr == evaluate(result.model, graph, "valid").mrr


def test_training_is_reproducible() -> None:
    graph = family_graph(num_families=1)
    config = SEEKConfig(dim=8, num_segments=2, num_epochs=2, batch_size=32)
    a, b = train(config, graph, progress=False), train(config, graph, progress=False)
    assert torch.equal(a.model.entity, b.model.entity)


def test_labels_and_models() -> None:
    graph = family_graph(num_families=1)
    assert [SEEKConfig(num_segments=k, num_epochs=1).label for k in (1, 2, 8)] == ["DistMult", "ComplEx", "SEEK k=8"]
    assert isinstance(build_model(SEEKConfig(model="transe", num_epochs=1), graph), TransE)
    model = build_model(SEEKConfig(num_segments=8, dim=64, num_epochs=1), graph)
    assert isinstance(model, SEEK) and model.num_segments == 8


BAD_VALUES = [
    ("dataset", "fb15k"),
    ("model", "rotate"),
    ("dim", 0),
    ("num_segments", 0),
    ("num_segments", 2.0),
    ("num_epochs", 0),
    ("batch_size", 0),
    ("lr", 0.0),
    ("lr", math.nan),
    ("lr", math.inf),
    ("num_negatives", -1),
    ("corrupt_relations", 1),
    ("l2", -1e-3),
    ("l2", math.nan),
    ("loss", "margin"),
    ("init_scale", -0.1),
    ("margin", math.nan),
    ("seed", -1),
    ("seed", 0.5),
    ("eval_every", -1),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_configs_are_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SEEKConfig(**{field: value})  # type: ignore[arg-type]


def test_segments_must_divide_the_dimension() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        SEEKConfig(dim=30, num_segments=4)
    assert SEEKConfig(model="transe", dim=30, num_segments=4).label == "TransE"  # TransE has no segments


def test_epoch_seconds_times_each_config() -> None:
    graph = family_graph(num_families=1)
    configs = [SEEKConfig(dim=8, num_segments=k, num_epochs=1) for k in (1, 4)]
    seconds = epoch_seconds(configs, graph, repeats=2)
    assert len(seconds) == 2 and all(s > 0 for s in seconds)
    with pytest.raises(ValueError, match="repeats"):
        epoch_seconds(configs, graph, repeats=0)
