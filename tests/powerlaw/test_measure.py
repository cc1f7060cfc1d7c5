"""Noise measurements on networks: per-sample gradients, the noise trace, Hessian-vector products and the top
eigenvector against brute force; the known quadratic noise of linear regression recovered; the fit's test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from reprobook.powerlaw import (
    MLP,
    fit_noise,
    gradient_noise,
    hvp,
    noise_profile,
    per_sample_gradients,
    top_eigen,
)
from reprobook.powerlaw.measure import flatten, unflatten


@pytest.fixture
def tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return MLP(5, (7,), 3).double(), torch.randn(20, 5, dtype=torch.float64), torch.randint(0, 3, (20,))


def _flat_params(model: nn.Module) -> torch.Tensor:
    return flatten({n: p.detach() for n, p in model.named_parameters()})


def test_per_sample_gradients_match_a_loop(tiny) -> None:
    model, x, y = tiny
    grads = per_sample_gradients(model, x, y)
    for i in (0, 7, 19):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(grads[i], expected)
    assert grads.shape == (20, sum(p.numel() for p in model.parameters()))


def test_noise_trace_is_the_gradient_covariance_trace(tiny) -> None:
    model, x, y = tiny
    g = per_sample_gradients(model, x, y)
    expected = torch.cov(g.T, correction=0).trace()
    point = gradient_noise(model, x, y, chunk=6)  # chunks of 6 over 20 examples
    assert point.noise == pytest.approx(float(expected), rel=1e-10)
    assert point.loss == pytest.approx(float(nn.functional.cross_entropy(model(x), y)), rel=1e-10)


def test_hvp_and_top_eigen_against_the_full_hessian(tiny) -> None:
    model, x, y = tiny
    theta = _flat_params(model)

    def loss(flat: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, unflatten(model, flat), (x,)), y)

    hessian = torch.autograd.functional.hessian(loss, theta)
    v = torch.randn_like(theta)
    torch.testing.assert_close(hvp(model, x, y, v), hessian @ v)
    values = torch.linalg.eigvalsh(hessian)
    top = values[values.abs().argmax()]
    eig = top_eigen(model, x, y, iterations=500, tol=1e-10)
    assert eig.value == pytest.approx(float(top), rel=1e-6)
    torch.testing.assert_close(hessian @ eig.vector, eig.value * eig.vector, atol=1e-5, rtol=1e-4)


def test_recovers_the_quadratic_noise_of_linear_regression() -> None:
    """y = x.w* + ε, x ~ N(0, I_d), ε ~ N(0, σ²), loss ½ (x.w - y)²: each example's gradient is x (x.u - ε) with
    u = w - w*, so the noise trace is exactly (d + 1) |u|² + d σ² in expectation: quadratic in the distance."""
    torch.manual_seed(0)
    d, n, sigma = 4, 200_000, 0.5
    x = torch.randn(n, d, dtype=torch.float64)
    w_star = torch.randn(d, dtype=torch.float64)
    y = x @ w_star + sigma * torch.randn(n, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w_star[None])

    def half_mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 0.5 * (out[:, 0] - target).square().mean()

    direction = torch.randn(d, dtype=torch.float64)
    distances = np.linspace(-2, 2, 9)
    profile = noise_profile(model, x, y, direction, distances, loss=half_mse)
    fit = fit_noise(profile.distances, profile.noises)
    a, b, c = fit.quadratic
    assert c == pytest.approx(d + 1, rel=0.03) and a == pytest.approx(d * sigma**2, rel=0.03) and abs(b) < 0.1
    assert fit.r2 > 0.999 and fit.p_value < 1e-6
    np.testing.assert_allclose(profile.losses, 0.5 * (sigma**2 + distances**2), rtol=0.03)  # the loss, ½ σ² + ½ t²


def test_fit_noise_on_flat_and_quadratic_data() -> None:
    t = np.linspace(-1, 1, 11)
    rng = np.random.default_rng(0)
    flat = fit_noise(t, 3.0 + 0.01 * rng.standard_normal(11))
    assert flat.p_value > 0.01 and flat.constant == pytest.approx(3.0, abs=0.01)
    curved = fit_noise(t, 1.0 + 2.0 * t * t + 0.01 * rng.standard_normal(11))
    assert curved.p_value < 1e-10 and curved.r2 > 0.99
    np.testing.assert_allclose(curved.predict(t), 1.0 + 2.0 * t * t, atol=0.03)
    with pytest.raises(ValueError, match="same length >= 4"):
        fit_noise(t[:3], t[:3])


def test_bad_inputs(tiny) -> None:
    model, x, y = tiny
    with pytest.raises(ValueError, match="x and y"):
        per_sample_gradients(model, x, y[:3])
    with pytest.raises(ValueError, match="direction"):
        noise_profile(model, x, y, torch.zeros(3), [0.0])
    with pytest.raises(ValueError, match="flat has"):
        unflatten(model, torch.zeros(5))
