"""Euler–Maruyama particles against the exact theory: exit times within Monte-Carlo error, the stationary law's
exponent, and the bad inputs of a simulation."""

from __future__ import annotations

import pytest
import torch

from reprobook.powerlaw import Basin, exit_times, fit_phi, langevin, mean_exit_time, stationary_samples

CHAPTER = Basin.sgd(sharpness=2.0, batch_size=1, lr=0.5, loss_min=1.0)


@pytest.mark.parametrize("basin", [CHAPTER, langevin(CHAPTER)], ids=["power-law", "Langevin"])
def test_exit_times_match_the_quadrature(basin: Basin) -> None:
    barriers = [0.5, 1.5]
    sim = exit_times(basin, barriers, num_particles=3000, dt=0.01, max_time=200.0, seed=1, chunk_steps=300)
    assert sim.times.shape == (3000, 2) and int(sim.censored.sum()) == 0
    exact = torch.tensor([mean_exit_time(basin, b) for b in barriers], dtype=torch.float64)
    z = (sim.mean() - exact) / sim.sem()
    assert bool((z.abs() < 4).all()), f"simulated {sim.mean().tolist()}, exact {exact.tolist()}"
    assert bool((sim.times[:, 0] <= sim.times[:, 1]).all())  # crossings are nested


def test_exit_without_bridge_is_late() -> None:
    """Checking only at the steps misses excursions: the mean exit time comes out too long."""
    plain = exit_times(CHAPTER, 1.0, num_particles=3000, dt=0.02, max_time=100.0, seed=2, bridge=False)
    assert float(plain.mean()[0]) > 1.1 * mean_exit_time(CHAPTER, 1.0)


def test_censoring_is_reported() -> None:
    sim = exit_times(langevin(CHAPTER), 8.0, num_particles=50, dt=0.05, max_time=1.0, seed=0)
    assert int(sim.censored[0]) > 0 and bool(torch.isinf(sim.mean()).all())


def test_stationary_samples_follow_the_power_law() -> None:
    samples = stationary_samples(CHAPTER, num_particles=8000, dt=0.01, time=8.0, seed=3)
    phi, se = fit_phi(samples.numpy(), CHAPTER)
    assert abs(phi - CHAPTER.phi) < 4 * se + 0.03  # + the O(dt) bias of the Euler-Maruyama chain


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="dt"):
        exit_times(CHAPTER, 1.0, num_particles=10, dt=0.0, max_time=1.0)
    with pytest.raises(ValueError, match="num_particles"):
        exit_times(CHAPTER, 1.0, num_particles=0, dt=0.01, max_time=1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        exit_times(CHAPTER, [2.0, 1.0], num_particles=10, dt=0.01, max_time=1.0)
    with pytest.raises(ValueError, match="inside the start point"):
        exit_times(CHAPTER, 1.0, num_particles=10, dt=0.01, max_time=1.0, start=1.5)  # q(1.5) = 2.25 > 1
