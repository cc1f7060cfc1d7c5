"""The SGD runs of the large-batch experiment: config checks, the noise kick, a tiny overfit, the baselines."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from reprobook.powerlaw import (
    MLP,
    PowerLawConfig,
    build_model,
    evaluate,
    large_batch,
    load_data,
    matched_constant,
    noisy_sgd_step,
    small_batch,
    top_eigen,
    train,
)


@pytest.fixture(scope="module")
def data():
    return load_data(PowerLawConfig(train_size=300))


def test_data_and_model_shapes(data) -> None:
    assert data.train_x.shape == (300, 64) and data.test_x.shape == (1797 - 300, 64)
    assert data.num_classes == 10 and float(data.train_x.min()) >= 0 and float(data.train_x.max()) <= 1
    assert set(data.train_y.tolist()) == set(range(10))  # stratified
    model = build_model(PowerLawConfig(hidden=(16, 8)), data)
    assert model(data.test_x[:5]).shape == (5, 10)


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_size", 0), ("noise", "pink"), ("noise_scale", -1.0), ("hidden", ()), ("lr", 0.0), ("train_size", 5)],
)
def test_config_refuses_bad_values_by_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field if field != "hidden" else "hidden"):
        PowerLawConfig(**{field: value})


def test_labels_and_noise_power() -> None:
    config = PowerLawConfig(batch_size=512, noise="state", noise_scale=2.0)
    assert config.label == "batch 512 + state-dependent noise"
    assert config.noise_power(0.25) == pytest.approx(1.0)
    assert replace(config, noise="constant").noise_power(0.25) == pytest.approx(4.0)
    assert large_batch(config).noise_power(0.25) == 0 and small_batch(config, 8).label == "batch 8"
    assert matched_constant(config, 9.0).noise_scale == pytest.approx(3.0)


def test_noisy_step_is_sgd_plus_a_kick_of_the_given_power() -> None:
    torch.manual_seed(0)
    params = [torch.zeros(300, 40), torch.zeros(2000)]
    for p in params:
        p.grad = torch.ones_like(p)
    noisy_sgd_step(params, 0.1, 0.0)
    assert all(torch.equal(p, torch.full_like(p, -0.1)) for p in params)
    noisy_sgd_step(params, 0.1, 4.0, torch.Generator().manual_seed(0))
    kick = torch.cat([(p + 0.2).reshape(-1) for p in params])
    assert float(kick.square().sum()) == pytest.approx(0.1**2 * 4.0, rel=0.05)  # E |kick|² = η² v


def test_training_lowers_the_loss_and_records_the_noise(data) -> None:
    config = PowerLawConfig(
        hidden=(32,), train_size=300, batch_size=32, lr=0.2, num_steps=150, noise="state", noise_scale=1.0,
        eval_every=75, track_noise=True,
    )  # fmt: skip
    result = train(config, data, progress=False)
    losses = result.history["loss"]
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    assert result.test.accuracy > 0.6 and result.test.sharpness > 0
    assert len(result.noise_trace) == 3 and all(n > 0 for _, n in result.noise_trace)  # start, 75, 150
    assert result.mean_noise_power == pytest.approx(sum(result.history["noise_power"]) / 150, rel=1e-9)
    steps, accuracy = result.history.curve("test_accuracy")
    assert steps == [0.0, 75.0, 150.0] and accuracy[-1] == pytest.approx(result.test.accuracy)


def test_same_seed_same_run(data) -> None:
    config = PowerLawConfig(hidden=(16,), train_size=300, batch_size=64, num_steps=20, eval_every=20)
    a, b = train(config, data, progress=False), train(config, data, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    c = train(replace(config, seed=1), data, progress=False)
    assert not all(torch.equal(p, q) for p, q in zip(a.model.parameters(), c.model.parameters()))
    plain = train(large_batch(config), data, progress=False)
    assert plain.mean_noise_power == 0 and not math.isnan(plain.test.loss)


def test_evaluate_scores_and_sharpness(data) -> None:
    torch.manual_seed(0)
    model = MLP(64, (16,), 10)
    model.train()
    scores = evaluate(model, data, "train", label="untrained")
    assert model.training  # the mode is given back
    assert 0 <= scores.accuracy <= 1 and scores.row()["method"] == "untrained"
    assert scores.sharpness == pytest.approx(top_eigen(model, data.train_x, data.train_y).value, rel=1e-6)
    assert math.isnan(evaluate(model, data, sharpness=False).sharpness)
    with pytest.raises(ValueError, match="split"):
        evaluate(model, data, "valid")
