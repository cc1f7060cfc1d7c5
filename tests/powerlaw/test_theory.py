"""The exact theory of a basin: the stationary law solves the zero-flux equation and integrates to 1, the exit time
solves the exit-time ODE and meets its closed forms and limits, Langevin is the c1 -> 0 limit, and bad input fails."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.sparse import diags
from scipy.sparse.linalg import spsolve

from reprobook.powerlaw import Basin, exit_time_asymptote, fit_phi, langevin, mean_exit_time, stationary_law

CHAPTER = Basin.sgd(sharpness=2.0, batch_size=1, lr=0.5, loss_min=1.0)  # c0 = c1 = 4, phi = 2, nu = 3


def test_mori_parametrisation() -> None:
    b = Basin.sgd(sharpness=0.5, batch_size=8, lr=0.1, loss_min=0.3, dim=3)
    assert b.c0 == pytest.approx(2 * 0.5 * 0.3 / 8) and b.c1 == pytest.approx(2 * 0.5 / 8)
    assert b.phi == pytest.approx(1 + 8 / (0.1 * 0.5))  # Mori et al., Eq. 18
    assert b.exit_exponent == pytest.approx(8 / (0.1 * 0.5) + 1 - 3 / 2)  # Eq. 17 with n = 3
    assert CHAPTER.tail_index == pytest.approx(3.0) and CHAPTER.kind == "power-law"
    assert langevin(CHAPTER).kind == "Langevin" and langevin(CHAPTER).c0 == CHAPTER.c0


def test_density_integrates_to_one_and_solves_zero_flux() -> None:
    for basin in (CHAPTER, langevin(CHAPTER), Basin(1.0, 0.3, c0=0.5, c1=2.0)):
        law = stationary_law(basin)
        assert integrate.quad(law.pdf, -np.inf, np.inf)[0] == pytest.approx(1.0, abs=1e-8)
        # zero flux: h u p + ½ d/du (s² p) = 0, checked by central differences
        u, du = np.linspace(-3, 3, 61), 1e-5
        s2p = lambda x: basin.diffusion(0.5 * basin.sharpness * x * x) * law.pdf(x)  # noqa: B023
        flux = basin.sharpness * u * law.pdf(u) + 0.5 * (s2p(u + du) - s2p(u - du)) / (2 * du)
        assert np.abs(flux).max() < 1e-6


def test_two_dimensional_marginal() -> None:
    b = Basin.sgd(2.0, 2, 0.5, 1.0, dim=2)  # p(u) ∝ (c0 + a |u|²)^-phi in 2-D; marginalise the second coordinate
    a = b.c1 * b.sharpness / 2
    joint = lambda y, x: (b.c0 + a * (x * x + y * y)) ** -b.phi
    norm = integrate.dblquad(joint, -np.inf, np.inf, -np.inf, np.inf)[0]
    for x in (0.0, 0.7, 3.0):
        marginal = integrate.quad(lambda y: joint(y, x), -np.inf, np.inf)[0] / norm  # noqa: B023
        assert stationary_law(b).pdf(x) == pytest.approx(marginal, rel=1e-6)


def test_langevin_is_the_limit_of_vanishing_state_dependence() -> None:
    near = Basin(2.0, 0.5, c0=4.0, c1=1e-6)
    u = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(stationary_law(near).pdf(u), stationary_law(langevin(near)).pdf(u), rtol=1e-4)
    assert mean_exit_time(near, 3.0) == pytest.approx(mean_exit_time(langevin(near), 3.0), rel=1e-4)


def _exit_time_by_finite_differences(basin: Basin, barrier: float, points: int = 4001) -> float:
    """(s²/2) T'' - h u T' = -1 on (-a, a), T(±a) = 0, in 1-D: an independent check of the quadrature."""
    a = basin.distance(barrier)
    u = np.linspace(-a, a, points)
    du = u[1] - u[0]
    s2 = basin.diffusion(0.5 * basin.sharpness * u * u)
    b = -basin.sharpness * u
    lower, middle, upper = s2 / 2 / du**2 - b / (2 * du), -s2 / du**2, s2 / 2 / du**2 + b / (2 * du)
    matrix = diags([lower[2:-1], middle[1:-1], upper[1:-2]], [-1, 0, 1], format="csc")
    return float(spsolve(matrix, -np.ones(points - 2))[(points - 2) // 2])


@pytest.mark.parametrize("barrier", [0.5, 2.0, 6.0])
def test_exit_time_solves_the_ode(barrier: float) -> None:
    for basin in (CHAPTER, langevin(CHAPTER)):
        assert mean_exit_time(basin, barrier) == pytest.approx(
            _exit_time_by_finite_differences(basin, barrier), rel=1e-5
        )


def test_exit_time_closed_form_in_two_dimensions() -> None:
    """dim = 2 and m = φ - 1 = 1 integrate in closed form: T = a² / (2 η c0) = ΔL / (h η c0)."""
    b = Basin.sgd(2.0, 1, 0.5, 1.0, dim=2)
    for barrier in (0.3, 4.0, 99.0):
        assert mean_exit_time(b, barrier) == pytest.approx(barrier / (b.sharpness * b.lr * b.c0), rel=1e-8)


@pytest.mark.parametrize("barrier", [0.1, 2.0, 1e3, 1e5])
def test_exit_time_closed_form_in_one_dimension(barrier: float) -> None:
    """The chapter's basin (1-D, φ = 2, c0 = c1 = 4, h = 2, η = 0.5) integrates in closed form: with a² = ΔL,
    T = ½ [(a + a³/3) atan(a) + a²/3 - log(1 + a²)/3] (derived here), so T ≈ (π/12) ΔL^1.5 (1 + 3/ΔL)."""
    a = math.sqrt(barrier)
    exact = 0.5 * ((a + a**3 / 3) * math.atan(a) + a * a / 3 - math.log1p(a * a) / 3)
    assert mean_exit_time(CHAPTER, barrier) == pytest.approx(exact, rel=1e-8)


def test_exit_time_limits() -> None:
    """Large barriers: the power law approaches its power of (1 + c1 ΔL / c0), with the predicted local slope;
    Langevin approaches its Arrhenius-like exponential."""
    ratio = [mean_exit_time(CHAPTER, d) / exit_time_asymptote(CHAPTER, d) for d in (1e2, 1e3, 1e4)]
    assert abs(ratio[-1] - 1) < 1e-3 and abs(ratio[0] - 1) > abs(ratio[-1] - 1)
    # the local slope approaches the exponent like 3 / ΔL (the closed form below): 1e-4 off between 1e4 and 1e5
    slope = math.log(mean_exit_time(CHAPTER, 1e5) / mean_exit_time(CHAPTER, 1e4)) / math.log(1e5 / 1e4)
    assert slope == pytest.approx(CHAPTER.exit_exponent, abs=3e-4)
    quiet = langevin(CHAPTER)
    ratio = [mean_exit_time(quiet, d) / exit_time_asymptote(quiet, d) for d in (10.0, 100.0)]
    assert abs(ratio[1] - 1) < 0.01 and abs(ratio[1] - 1) < abs(ratio[0] - 1)
    # polynomial against exponential: doubling a large barrier multiplies T by ~2^1.5 against ~e^ΔL
    assert mean_exit_time(CHAPTER, 40.0) / mean_exit_time(CHAPTER, 20.0) < 3.5
    assert mean_exit_time(quiet, 40.0) / mean_exit_time(quiet, 20.0) > 1e8


def test_fit_phi_recovers_the_exponent() -> None:
    samples = stationary_law(CHAPTER).rvs(size=20_000, random_state=np.random.default_rng(0))
    phi, se = fit_phi(samples, CHAPTER)
    assert abs(phi - CHAPTER.phi) < 4 * se and se < 0.02
    b2 = Basin.sgd(2.0, 2, 0.5, 1.0, dim=2)  # phi = 3, a bivariate t with nu = 4
    a = b2.c1 * b2.sharpness / 2
    t2 = stats.multivariate_t(loc=[0, 0], shape=np.eye(2) * b2.c0 / (a * b2.tail_index), df=b2.tail_index)
    phi2, se2 = fit_phi(t2.rvs(size=20_000, random_state=np.random.default_rng(1)), b2)
    assert abs(phi2 - b2.phi) < 4 * se2


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="beyond stability"):
        Basin.sgd(sharpness=4.0, batch_size=1, lr=0.5, loss_min=1.0)
    with pytest.raises(ValueError, match="sharpness"):
        Basin.sgd(sharpness=0.0, batch_size=1, lr=0.5, loss_min=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        Basin.sgd(sharpness=1.0, batch_size=0, lr=0.5, loss_min=1.0)
    with pytest.raises(ValueError, match="c0"):
        Basin(1.0, 0.5, c0=0.0)
    with pytest.raises(ValueError, match="barrier"):
        mean_exit_time(CHAPTER, -1.0)
    with pytest.raises(ValueError, match="Eq. 19"):
        stationary_law(Basin.sgd(1.0, 1, 1.0, 1.0, dim=5))  # dim >= 2 (B / (lr h) + 1) = 4
    with pytest.raises(ValueError, match="power-law basin"):
        fit_phi(np.ones(10), langevin(CHAPTER))
