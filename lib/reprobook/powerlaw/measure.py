"""Measuring SGD's noise on a real network: per-sample gradients, the noise trace, Hessian-vector products, the top
Hessian eigenvector, noise profiles along a direction, and the fit "constant" against "quadratic".

Everything works on the flattened parameter vector ``θ`` (``P`` numbers, in ``model.named_parameters()`` order)
through ``torch.func``: :func:`per_sample_gradients` is ``vmap(grad(loss of one example))``, :func:`hvp` is
forward-over-reverse ``jvp(grad(loss))``, so nothing loops over examples in Python.

The *noise trace* at ``θ`` is ``𝒩(θ) = (1/N) Σ_i |∇ℓ_i(θ)|² - |∇L(θ)|²``: the trace of the covariance of one
example's gradient, so a mini-batch of ``b`` examples drawn with replacement has gradient noise of covariance trace
``𝒩 / b`` (Mori et al. measure the same quantity, their Fig. 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vmap

from reprobook._validate import check_float, check_int

Loss = Callable[[Tensor, Tensor], Tensor]


def _params(model: nn.Module) -> dict[str, Tensor]:
    return {name: p.detach() for name, p in model.named_parameters()}


def flatten(tensors: dict[str, Tensor]) -> Tensor:
    """One flat ``(P,)`` vector of every tensor of ``tensors``, in order (the inverse of :func:`unflatten`)."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten(model: nn.Module, flat: Tensor) -> dict[str, Tensor]:
    """``flat`` ``(P,)`` cut into tensors shaped like ``model``'s parameters, by name."""
    size = sum(p.numel() for p in model.parameters())
    if flat.ndim != 1 or flat.numel() != size:
        raise ValueError(
            f"flat has {flat.numel()} numbers (shape {tuple(flat.shape)}) but the model has {size} parameters"
        )
    out, start = {}, 0
    for name, p in model.named_parameters():
        out[name] = flat[start : start + p.numel()].view_as(p)
        start += p.numel()
    return out


def _check_xy(x: Tensor, y: Tensor) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor) or x.ndim < 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty tensors with one row per example, got {x.shape} and {y.shape}")


def per_sample_gradients(
    model: nn.Module, x: Tensor, y: Tensor, loss: Loss = F.cross_entropy, *, params: Tensor | None = None
) -> Tensor:
    """``(N, P)``: the gradient of each example's loss, ``vmap(grad(...))`` over the examples of ``x, y``.

    ``params``: a flat ``(P,)`` point to evaluate at instead of the model's current parameters.
    """
    _check_xy(x, y)
    point = _params(model) if params is None else unflatten(model, params)

    def one(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        return loss(functional_call(model, p, (xi[None],)), yi[None])

    grads = vmap(grad(one), in_dims=(None, 0, 0))(point, x, y)
    return torch.cat([g.reshape(len(x), -1) for g in grads.values()], 1)


@dataclass(frozen=True)
class NoisePoint:
    """The mean loss ``L`` and the noise trace ``𝒩`` (module docstring) at one point."""

    loss: float
    noise: float


def gradient_noise(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: Loss = F.cross_entropy,
    *,
    params: Tensor | None = None,
    chunk: int = 1024,
) -> NoisePoint:
    """The loss and the noise trace ``𝒩 = mean |g_i|² - |mean g_i|²`` over the examples, ``chunk`` at a time."""
    _check_xy(x, y)
    check_int("chunk", chunk, 1)
    point = _params(model) if params is None else unflatten(model, params)
    total, squares, losses = None, 0.0, 0.0
    for start in range(0, len(x), chunk):
        xs, ys = x[start : start + chunk], y[start : start + chunk]
        g = per_sample_gradients(model, xs, ys, loss, params=flatten(point))
        total = g.sum(0) if total is None else total + g.sum(0)
        squares += float(g.double().square().sum())
        with torch.no_grad():
            losses += float(loss(functional_call(model, point, (xs,)), ys)) * len(xs)
    assert total is not None
    mean = total.double() / len(x)
    return NoisePoint(loss=losses / len(x), noise=squares / len(x) - float(mean.square().sum()))


def hvp(model: nn.Module, x: Tensor, y: Tensor, vector: Tensor, loss: Loss = F.cross_entropy) -> Tensor:
    """``H v``: the Hessian of the mean loss on ``x, y`` times the flat ``vector`` ``(P,)`` (forward-over-reverse)."""
    _check_xy(x, y)
    point = _params(model)

    def mean_loss(p: dict[str, Tensor]) -> Tensor:
        return loss(functional_call(model, p, (x,)), y)

    product = jvp(grad(mean_loss), (point,), (unflatten(model, vector),))[1]  # (value, tangent): the tangent
    return flatten(product)


@dataclass(frozen=True)
class Eigen:
    """The top Hessian eigenvalue ``value``, its unit eigenvector ``vector`` ``(P,)`` and the power iterations."""

    value: float
    vector: Tensor
    iterations: int


def top_eigen(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: Loss = F.cross_entropy,
    *,
    iterations: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
) -> Eigen:
    """The largest-magnitude eigenvalue of the loss Hessian by power iteration on :func:`hvp`, from a random
    start (``seed``), stopping when the Rayleigh quotient changes by less than ``tol`` (relative)."""
    check_int("iterations", iterations, 1)
    check_float("tol", tol, 0, open_low=True)
    size = sum(p.numel() for p in model.parameters())
    first = next(model.parameters())
    v = torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=first.dtype).to(first.device)
    v /= v.norm()
    value = 0.0
    for i in range(1, iterations + 1):
        hv = hvp(model, x, y, v, loss)
        new = float(v @ hv)
        v = hv / hv.norm()
        if i > 1 and abs(new - value) <= tol * abs(new):
            return Eigen(new, v, i)
        value = new
    return Eigen(value, v, iterations)


@dataclass(frozen=True)
class NoiseProfile:
    """Loss and noise trace at ``θ* + t d`` for each distance ``t`` along a unit direction ``d``."""

    distances: np.ndarray
    losses: np.ndarray
    noises: np.ndarray


def noise_profile(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    direction: Tensor,
    distances: Sequence[float],
    loss: Loss = F.cross_entropy,
) -> NoiseProfile:
    """:func:`gradient_noise` at ``θ* + t d`` (``θ*``: the model's parameters, ``d``: ``direction`` normalised)."""
    if not len(distances):
        raise ValueError("distances must hold at least one distance")
    theta = flatten(_params(model))
    if direction.shape != theta.shape or float(direction.norm()) == 0:
        raise ValueError(f"direction must be a non-zero ({theta.numel()},) vector, got {tuple(direction.shape)}")
    unit = direction / direction.norm()
    points = [gradient_noise(model, x, y, loss, params=theta + float(t) * unit) for t in distances]
    return NoiseProfile(
        np.asarray(distances, dtype=np.float64),
        np.array([p.loss for p in points]),
        np.array([p.noise for p in points]),
    )


@dataclass(frozen=True)
class NoiseFit:
    """Least-squares fits of the noise trace ``𝒩(t)``: a constant, and the quadratic ``a + b t + c t²``.

    ``r2``: the share of the variance of ``𝒩`` over the points that the quadratic explains (the constant explains
    none); ``f_stat`` and ``p_value``: the F-test of the quadratic against the constant (2 extra parameters).
    """

    constant: float
    quadratic: tuple[float, float, float]
    rss_constant: float
    rss_quadratic: float
    r2: float
    f_stat: float
    p_value: float

    def predict(self, t: np.ndarray) -> np.ndarray:
        a, b, c = self.quadratic
        return a + b * t + c * t * t


def fit_noise(distances: np.ndarray, noises: np.ndarray) -> NoiseFit:
    """Fit a constant and a quadratic in the distance to ``noises`` and test the one against the other."""
    t, n = np.asarray(distances, dtype=np.float64), np.asarray(noises, dtype=np.float64)
    if t.shape != n.shape or t.ndim != 1 or len(t) < 4:
        raise ValueError(
            f"distances and noises must be two 1-D arrays of the same length >= 4, got {t.shape}, {n.shape}"
        )
    design = np.stack([np.ones_like(t), t, t * t], 1)
    coef, *_ = np.linalg.lstsq(design, n, rcond=None)
    rss_quadratic = float(((design @ coef - n) ** 2).sum())
    rss_constant = float(((n - n.mean()) ** 2).sum())
    dof = len(t) - 3
    if rss_quadratic == 0:
        f_stat = math.inf
    else:
        f_stat = ((rss_constant - rss_quadratic) / 2) / (rss_quadratic / dof)
    p_value = float(stats.f.sf(f_stat, 2, dof)) if math.isfinite(f_stat) else 0.0
    r2 = 1 - rss_quadratic / rss_constant if rss_constant > 0 else 0.0
    return NoiseFit(
        constant=float(n.mean()),
        quadratic=(float(coef[0]), float(coef[1]), float(coef[2])),
        rss_constant=rss_constant,
        rss_quadratic=rss_quadratic,
        r2=float(r2),
        f_stat=float(f_stat),
        p_value=p_value,
    )
