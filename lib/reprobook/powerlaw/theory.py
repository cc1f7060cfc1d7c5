"""The exact theory of a :class:`~reprobook.powerlaw.dynamics.Basin`: stationary law, mean exit time, their limits.

Everything here is derived in the chapter (and in the project's note on the paper) from the zero-flux
Fokker–Planck equation and the mean-exit-time ODE of a diffusion; none of it is taken from Meng et al.'s text,
which the project could not read. The results agree with Mori et al. (ICML 2022), Eqs. 16–18.

* :func:`stationary_law`: ``p(u) ∝ C(u)^-φ``, a (multivariate) Student-t with ``ν = 2φ - dim`` degrees of
  freedom; for Langevin a Gaussian of variance ``η c0 / (2h)``. As a frozen ``scipy.stats`` law of one coordinate.
* :func:`fit_phi`: the maximum-likelihood ``φ`` of samples and its standard error.
* :func:`mean_exit_time`: the mean time to reach the excess loss ``ΔL`` from the minimum, by quadrature of ::

      T(a) = ∫_0^a dx ∫_0^x dw  2 / s²(w) · (w / x)^(dim-1) · exp(Φ(x) - Φ(w)),     a = sqrt(2 ΔL / h)

  with ``s² = η C`` and ``Φ(x) = ∫_0^x 2 h r / s²(r) dr``: ``h x² / (η c0)`` for Langevin and
  ``(2 / (η c1)) log(1 + c1 q(x) / c0)`` for the power law (the radial process of an isotropic basin).
* :func:`exit_time_asymptote`: its large-barrier limit, a power of ``1 + c1 ΔL / c0`` for the power law and an
  exponential in ``ΔL`` for Langevin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import integrate, optimize, special, stats

from reprobook._validate import check_float
from reprobook.powerlaw.dynamics import Basin


def _check_normalisable(basin: Basin) -> None:
    if basin.c1 > 0 and basin.tail_index <= 0:
        raise ValueError(
            f"the stationary law of this basin is not normalisable: dim={basin.dim} >= 2 phi = {2 * basin.phi:.3g} "
            "(Mori et al., Eq. 19: the minimum is stable only if dim < 2 (B / (lr h) + 1)); lower lr or dim"
        )


def stationary_law(basin: Basin) -> Any:
    """The stationary law of one coordinate, a frozen ``scipy.stats`` distribution (``.pdf``, ``.sf``, ...).

    Power law: ``t(df=ν, scale=sqrt(c0 / (a ν)))`` with ``a = c1 h / 2`` and ``ν = 2φ - dim``, the marginal of
    ``p(u) ∝ (c0 + a |u|²)^-φ``. Langevin: ``norm(scale=sqrt(η c0 / (2h)))``.
    """
    if basin.c1 == 0:
        return stats.norm(scale=math.sqrt(basin.lr * basin.c0 / (2 * basin.sharpness)))
    _check_normalisable(basin)
    nu = basin.tail_index
    a = basin.c1 * basin.sharpness / 2
    return stats.t(df=nu, scale=math.sqrt(basin.c0 / (a * nu)))


def fit_phi(samples: np.ndarray, basin: Basin) -> tuple[float, float]:
    """Maximum-likelihood ``φ`` of ``p(u) ∝ (c0 + a |u|²)^-φ`` from independent ``samples`` ``(N, dim)`` (or
    ``(N,)`` in 1-D), with ``c0`` and ``a = c1 h / 2`` of ``basin`` known; returns ``(φ̂, standard error)``.

    With ``S`` the mean of ``log(1 + a |u|² / c0)``, the likelihood equation is ``ψ(φ) - ψ(φ - dim/2) = S``
    (``ψ`` the digamma function), and the Fisher information per sample ``ψ'(φ - dim/2) - ψ'(φ)``.
    """
    if basin.c1 == 0:
        raise ValueError("fit_phi needs a power-law basin (c1 > 0); a Langevin basin has no finite phi")
    x = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    if x.shape[1] != basin.dim or len(x) < 2 or not np.isfinite(x).all():
        raise ValueError(f"samples must be finite, with shape (N >= 2, {basin.dim}); got {x.shape}")
    half = basin.dim / 2
    mean_log = float(np.mean(np.log1p(basin.c1 * basin.sharpness / 2 * (x**2).sum(1) / basin.c0)))
    if mean_log <= 0:
        raise ValueError("every sample sits at the minimum: phi cannot be estimated")

    def score(phi: float) -> float:
        return float(special.digamma(phi) - special.digamma(phi - half) - mean_log)

    high = half + 1.0
    while score(high) > 0:
        high = half + 2 * (high - half)
    phi = float(optimize.brentq(score, half + 1e-9, high, xtol=1e-12))
    information = float(special.polygamma(1, phi - half) - special.polygamma(1, phi))
    return phi, 1 / math.sqrt(len(x) * information)


def _phi(basin: Basin, x: float) -> float:
    """``Φ(x) = ∫_0^x 2 h r / s²(r) dr`` (module docstring)."""
    q = basin.excess_loss(x)
    if basin.c1 == 0:
        return 2 * q / (basin.lr * basin.c0)
    return 2 / (basin.lr * basin.c1) * math.log1p(basin.c1 * q / basin.c0)


def mean_exit_time(basin: Basin, barrier: float) -> float:
    """The exact mean time for a particle started at the minimum to reach the excess loss ``barrier`` (``ΔL``).

    Nested ``scipy.integrate.quad`` of the module docstring's double integral, written as
    ``exp(Φ(a)) ∫_0^a exp(Φ(x) - Φ(a)) I(x) dx`` so that nothing overflows before the last product (which is
    ``inf`` beyond float range). Isotropic basins in any ``dim``.
    """
    a = basin.distance(barrier)
    n = basin.dim
    phi_a = _phi(basin, a)

    def inner(x: float) -> float:  # I(x) = ∫_0^x 2 / s²(w) (w/x)^(n-1) exp(-Φ(w)) dw, times exp(Φ(x) - Φ(a))
        if x == 0:
            return 0.0

        def integrand(w: float) -> float:
            return 2 / basin.diffusion(basin.excess_loss(w)) * (w / x) ** (n - 1) * math.exp(-_phi(basin, w))

        value = integrate.quad(integrand, 0, x, limit=200, epsabs=0, epsrel=1e-11)[0]
        return value * math.exp(_phi(basin, x) - phi_a)

    outer = integrate.quad(inner, 0, a, limit=200, epsabs=0, epsrel=1e-10)[0]
    log_t = phi_a + math.log(outer)
    return math.exp(log_t) if log_t < 709 else math.inf


def exit_time_asymptote(basin: Basin, barrier: float) -> float:
    """The large-barrier limit of :func:`mean_exit_time` (derived in the chapter).

    Power law, with ``m = φ - 1``, ``k = c1 h / (2 c0)`` and ``a = sqrt(2 ΔL / h)``::

        T ≈ B(n/2, m + 1 - n/2) / (η c0 k (2m + 2 - n)) · (k a²)^(m + 1 - n/2),     k a² = c1 ΔL / c0

    (``B`` the Beta function); Langevin, with ``s² = η c0``::

        T ≈ Γ(n/2) (s² / h)^(n/2) a^-n exp(h a² / s²) / (2h),                       h a² / s² = 2 ΔL / s²
    """
    check_float("barrier", barrier, 0, open_low=True)
    a, n, h = basin.distance(barrier), basin.dim, basin.sharpness
    if basin.c1 == 0:
        s2 = basin.lr * basin.c0
        log_t = math.lgamma(n / 2) + n / 2 * math.log(s2 / h) - n * math.log(a) + h * a * a / s2 - math.log(2 * h)
        return math.exp(log_t) if log_t < 709 else math.inf
    m = basin.phi - 1
    if 2 * m + 2 - n <= 0:
        raise ValueError(f"no power-law limit: dim={n} >= 2 (m + 1) = {2 * m + 2:.3g} (Mori et al., Eq. 19)")
    k = basin.c1 * h / (2 * basin.c0)
    prefactor = special.beta(n / 2, m + 1 - n / 2) / (basin.lr * basin.c0 * k * (2 * m + 2 - n))
    return float(prefactor * (k * a * a) ** (m + 1 - n / 2))
