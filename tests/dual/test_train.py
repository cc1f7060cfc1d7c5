"""Configs refuse bad values by name; the world is what the config says; training improves on its warm start."""

from __future__ import annotations

import math

import pytest
import torch

from reprobook.dual import (
    DualConfig,
    evaluate,
    load_data,
    product_of_experts,
    round_trip,
    three_systems,
    train,
    twin_resolution,
)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("method", "cycle", "method='cycle' is not valid"),
        ("seeds_per_pair", 0, "empty seed dictionary"),
        ("seeds_per_pair", 500, "seeds_per_pair=500 is out of range"),
        ("pivot_seeds", 0, "pivot_seeds=0 is out of range"),
        ("noise", -1.0, "noise=-1.0 is out of range"),
        ("test_fraction", 1.0, "test_fraction=1.0 is out of range"),
        ("lr", math.inf, "lr must be a finite number"),
        ("warmup_steps", 1_000, "warmup_steps=1000 is out of range"),
        ("seed", -1, "seed=-1 is out of range"),
    ],
)
def test_config_refuses_bad_values(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DualConfig(**({"num_concepts": 100, "num_steps": 50, "warmup_steps": 10} | {field: value}))


def test_twins_need_an_even_count() -> None:
    with pytest.raises(ValueError, match="must be even"):
        DualConfig(num_concepts=41, twin_gap=0.1)


def test_world_follows_the_config() -> None:
    config = DualConfig(num_concepts=60, seeds_per_pair=4, pivot_seeds=10, twin_gap=0.05, seed=3)
    data = load_data(config)
    assert len(data.test) == 30 and data.vectors["Z"].shape == (60, config.word_dim)
    assert len(data.seed_pairs("X", "Y")) == 4 and len(data.seed_pairs("Z", "Y")) == 10
    assert not set(data.test.tolist()) & set(data.train.tolist())
    assert data.twin is not None and torch.equal(data.twin[data.twin], torch.arange(60))
    gap = (data.concepts[0::2] - data.concepts[1::2]).norm(dim=1).mean()
    assert gap < 0.2 * data.concepts.norm(dim=1).mean()
    again = load_data(config)
    assert torch.equal(again.vectors["X"], data.vectors["X"])


def test_tiny_overfit_and_the_surface() -> None:
    """On a tiny world the supervised loss falls and the held-out accuracy beats chance by far."""
    config = DualConfig(num_concepts=40, seeds_per_pair=15, num_steps=120, warmup_steps=60, eval_every=30,
                        noise=0.1, method="multistep")  # fmt: skip
    result = train(config, progress=False)
    losses = result.history["supervised"]
    assert losses[-1] < 0.5 * losses[0]
    assert result.test.accuracy > 10 / 40 and result.warm.accuracy > 4 / 40
    assert result.history.curve("accuracy")[0][-1] == 120
    row = evaluate(result.model, load_data(config), "train").row()
    assert row["accuracy"] > 0.8 and set(row) == {"method", "accuracy", "X<->Y accuracy"}
    assert set(three_systems(config)) == {"(a) supervised", "(b) standard dual", "(c) multi-step"}


def test_round_trip_measures_the_teaching_model() -> None:
    config = DualConfig(num_concepts=40, seeds_per_pair=15, num_steps=60, warmup_steps=60, noise=0.1,
                        method="supervised")  # fmt: skip
    data = load_data(config)
    result = train(config, data, progress=False)
    measured = round_trip(result.model, data)
    assert 0 < measured.p < 1 and 0 < measured.q < 1 and 0 < measured.echo < 1
    assert measured.agrees.shape == (20,) and 0 < measured.one_step < 1
    # Eq. (2), word by word with each word's own p, q and echo, is the exact one-step accuracy of f' ∝ f g
    assert measured.predicted == pytest.approx(measured.one_step, abs=1e-6)
    # ... while the same formula on the averages is not (Jensen: the words differ), so the measure is per word
    assert abs(product_of_experts(measured.p, [(measured.q, measured.echo)]) - measured.one_step) > 0.05


def test_twin_resolution_needs_twins_and_is_a_fraction() -> None:
    config = DualConfig(num_concepts=40, seeds_per_pair=10, num_steps=40, warmup_steps=40, twin_gap=0.05)
    data = load_data(config)
    result = train(config, data, progress=False)
    value = twin_resolution(result.model, data)
    assert math.isnan(value) or 0.0 <= value <= 1.0
    with pytest.raises(ValueError, match="needs a twin world"):
        twin_resolution(result.model, load_data(DualConfig(num_concepts=40, seeds_per_pair=10)))
    with pytest.raises(ValueError, match="twins"):
        twin_resolution(result.model, data, twins="both")


class _FixedTranslator(torch.nn.Module):
    """Translates every word to ``predictions`` (the test's stand-in for trained translators)."""

    def __init__(self, predictions: torch.Tensor) -> None:
        super().__init__()
        self.predictions = predictions

    def predict(self, data: object, source: str, target: str) -> torch.Tensor:
        return self.predictions


def test_twin_resolution_scores_the_chosen_group_of_twins() -> None:
    """Right where the twin is held out too, the twin where it is not: 1, 0, and their share for "all"."""
    data = load_data(DualConfig(num_concepts=200, seeds_per_pair=10, twin_gap=0.0))
    twin_held_out = torch.isin(data.twin, data.test)
    predictions = torch.where(twin_held_out, torch.arange(200), data.twin)
    model = _FixedTranslator(predictions)
    share = float(twin_held_out[data.test].float().mean())
    assert 0.1 < share < 0.9  # both groups are present
    assert twin_resolution(model, data) == 1.0
    assert twin_resolution(model, data, twins="seen") == 0.0
    assert twin_resolution(model, data, twins="all") == pytest.approx(share)


@pytest.mark.parametrize("profile", ["smoke", "book", "full"])
def test_profile_defaults_are_valid(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROBOOK_PROFILE", profile)
    DualConfig()
