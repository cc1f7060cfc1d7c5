"""Many particles of a :class:`~reprobook.powerlaw.dynamics.Basin` by Euler–Maruyama: exit times and stationary
samples.

Both run :func:`reprobook.kernels.sde_exit` (the fused Triton kernel on a GPU, its PyTorch reference elsewhere) in
chunks of ``chunk_steps`` steps, carrying the particles that are still inside from one chunk to the next, until
every particle has crossed the last barrier or ``max_time`` is reached.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from reprobook._validate import check_float, check_int
from reprobook.kernels.sde_exit import sde_exit
from reprobook.powerlaw.dynamics import Basin


@dataclass(frozen=True)
class ExitTimes:
    """Exit times of ``N`` particles at ``K`` barriers: ``times`` ``(N, K)`` float64, ``inf`` for a particle that
    had not crossed when the simulation stopped at ``max_time``; ``barriers`` ``(K,)``; ``dt`` the time step."""

    times: torch.Tensor
    barriers: torch.Tensor
    dt: float
    max_time: float

    @property
    def censored(self) -> torch.Tensor:
        """``(K,)``: how many particles had not crossed each barrier by ``max_time``."""
        return torch.isinf(self.times).sum(0)

    def mean(self) -> torch.Tensor:
        """``(K,)`` mean exit time per barrier (``inf`` where a particle is censored: run longer)."""
        return self.times.mean(0)

    def sem(self) -> torch.Tensor:
        """``(K,)`` standard error of :meth:`mean`: the standard deviation over particles over ``sqrt(N)``."""
        return self.times.std(0) / math.sqrt(len(self.times))


def _basin_tensors(basin: Basin, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    values = (basin.sharpness, basin.c0, basin.c1)
    return tuple(torch.full((basin.dim,), float(v), dtype=dtype, device=device) for v in values)


def _check_run(num_particles: int, dt: float, max_time: float, seed: int, chunk_steps: int) -> None:
    check_int("num_particles", num_particles, 1)
    check_float("dt", dt, 0, open_low=True)
    check_float("max_time", max_time, 0, open_low=True)
    check_int("seed", seed, 0)
    check_int("chunk_steps", chunk_steps, 1)


def exit_times(
    basin: Basin,
    barriers: float | Sequence[float],
    *,
    num_particles: int,
    dt: float,
    max_time: float,
    start: float = 0.0,
    seed: int = 0,
    bridge: bool = True,
    chunk_steps: int = 20_000,
    device: torch.device | str = "cpu",
    backend: str | None = None,
) -> ExitTimes:
    """First times at which ``num_particles`` particles reach each excess loss of ``barriers`` (``ΔL``, increasing),
    simulated with time step ``dt`` up to ``max_time`` at most. They start at distance ``start`` from the minimum
    (along the first coordinate), which must lie inside the first barrier.

    ``bridge``: the Brownian-bridge crossing test of the kernel (removes the O(sqrt(dt)) bias of checking only at
    the steps). Float64 on CPU; the random stream is ``seed``'s (:func:`reprobook.kernels.sde_exit`).
    """
    _check_run(num_particles, dt, max_time, seed, chunk_steps)
    levels = [float(barriers)] if isinstance(barriers, (int, float)) else [float(b) for b in barriers]
    if not levels:
        raise ValueError("barriers must hold at least one excess-loss level")
    for level in levels:
        check_float("barriers", level, 0, open_low=True)
    if any(b >= c for b, c in itertools.pairwise(levels)):
        raise ValueError(f"barriers must be strictly increasing, got {levels}")
    check_float("start", start)
    if basin.excess_loss(start) >= levels[0]:
        raise ValueError(
            f"the barrier {levels[0]:g} lies inside the start point: start={start:g} already has excess loss "
            f"{basin.excess_loss(start):.3g}; start closer to the minimum or raise the barrier"
        )
    dtype = torch.float64
    target = torch.device(device)
    h, c0, c1 = _basin_tensors(basin, dtype, target)
    barrier_tensor = torch.tensor(levels, dtype=dtype, device=target)
    u = torch.zeros(num_particles, basin.dim, dtype=dtype, device=target)
    u[:, 0] = start
    steps = torch.full((num_particles, len(levels)), -1, dtype=torch.long, device=target)
    inside = torch.arange(num_particles, device=target)
    total = math.ceil(max_time / dt)
    done = 0
    while done < total and len(inside):
        chunk = min(chunk_steps, total - done)
        got, u_end = sde_exit(
            u[inside], h, c0, c1, barrier_tensor, basin.lr, dt, chunk,
            seed=seed, step_offset=done, bridge=bridge, backend=backend,
        )  # fmt: skip
        fresh = steps[inside] < 0
        steps[inside] = torch.where(fresh, got, steps[inside])
        u[inside] = u_end
        inside = inside[steps[inside, -1] < 0]
        done += chunk
    times = torch.where(steps >= 0, steps.to(dtype) * dt, math.inf)
    return ExitTimes(times=times.cpu(), barriers=barrier_tensor.cpu(), dt=dt, max_time=total * dt)


def stationary_samples(
    basin: Basin,
    *,
    num_particles: int,
    dt: float,
    time: float,
    seed: int = 0,
    device: torch.device | str = "cpu",
    backend: str | None = None,
) -> torch.Tensor:
    """``(num_particles, dim)`` states after ``time`` units of time, every particle started at the minimum: once
    ``time`` is well beyond the relaxation time, independent draws from (the Euler–Maruyama chain's version of)
    the stationary law. No barrier stops them."""
    _check_run(num_particles, dt, time, seed, 1)
    dtype = torch.float64
    target = torch.device(device)
    h, c0, c1 = _basin_tensors(basin, dtype, target)
    u0 = torch.zeros(num_particles, basin.dim, dtype=dtype, device=target)
    never = torch.tensor([math.inf], dtype=dtype, device=target)
    _, final = sde_exit(
        u0, h, c0, c1, never, basin.lr, dt, math.ceil(time / dt), seed=seed, bridge=False, backend=backend
    )
    return final.cpu()
