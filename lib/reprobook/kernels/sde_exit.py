"""Fused multi-step Euler–Maruyama for many independent particles in a quadratic basin, with exit detection.

Each particle ``u`` (``D`` coordinates) moves in the quadratic basin ``q(u) = ½ Σ_j h_j u_j²`` (the loss above
its minimum) under an Itô SDE with diagonal, state-dependent diffusion::

    C_i(u)  = c0_i + c1_i · q(u)                        # noise covariance: constant part + part growing with q
    u_i    <- u_i - h_i u_i dt + sqrt(lr · C_i(u) · dt) · ξ_i,      ξ_i ~ N(0, 1)

``c1 = 0`` is Langevin dynamics (constant noise); ``c1 > 0`` the power-law dynamic. A particle *crosses* level
``k`` of ``barriers`` (increasing excess-loss levels) at the first step that ends with ``q(u) >= barriers[k]``,
and stops when it crosses the last level. Discrete monitoring misses the excursions above a level between two
steps and overestimates exit times by O(sqrt(dt)); with ``bridge=True`` a step that ends inside also counts as a
crossing with the Brownian-bridge probability ``exp(-2 d0 d1 / (s² dt))``, where ``d0`` and ``d1`` are the
distances from the two ends of the step to the level set along the gradient of ``q`` (exact for 1-D and isotropic
basins) and ``s²`` is the noise variance along that gradient at the start. That brings the bias down to O(dt).
One uniform draw serves every level, so crossings stay nested.

Outputs: ``exit_steps`` ``(N, K)`` int64, the step count at which each level was crossed, counted from
``step_offset`` so that a simulation can go on in chunks (``-1``: not within ``num_steps``; ``step_offset`` itself:
at or above the level at the start); and ``final`` ``(N, D)``, the state after the last step taken (at the exit for
particles that left). A level may be ``inf``: never crossed (a run to the stationary law).

Random numbers: the Triton kernel draws them in registers with Philox (``tl.randint4x``), keyed by ``seed`` and
counted by (absolute step, particle, coordinate), so a chunked run draws the same numbers as one long run. The
reference draws from a ``torch.Generator`` seeded from ``(seed, step_offset)``: the same seed gives the same
result on each backend, but the two backends' streams differ, so they agree in distribution only. For exact
comparisons both accept the noise instead: ``normals`` ``(num_steps, N, D)`` and ``uniforms`` ``(num_steps, N)``.

Why a kernel: eager PyTorch launches some forty small kernels per time step (drift, diffusion, draws, bridge,
bookkeeping), each reading and writing every particle, for tens of thousands of steps. The kernel keeps a block of
particles in registers for all the steps, and a block whose particles have all left stops early.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from reprobook.kernels._triton import jit, tl, triton
from reprobook.kernels.registry import KernelSpec, register

DTYPES = (torch.float32, torch.float64)
_BLOCK = 128
_COMPACT_EVERY = 256  # reference: drop the particles that have left every so many steps
_DRAW_CHUNK = 256  # reference: draw the noise of this many steps at once


@jit
def _distance(gap, slope, curvature):
    """Distance along grad q to the level ``q + gap``: the root of ``gap = slope t + ½ curvature t²``."""
    return 2.0 * gap / (slope + tl.sqrt(tl.maximum(slope * slope + 2.0 * curvature * gap, 0.0)))


@jit
def _sde_exit_kernel(
    u0_ptr,
    h_ptr,
    c0_ptr,
    c1_ptr,
    barriers_ptr,
    normals_ptr,
    uniforms_ptr,
    exit_ptr,
    final_ptr,
    n,
    num_steps,
    step_offset,
    seed,
    lr,
    dt,
    D: tl.constexpr,
    D_P2: tl.constexpr,
    K: tl.constexpr,
    K_P2: tl.constexpr,
    BRIDGE: tl.constexpr,
    GIVEN_NOISE: tl.constexpr,
    BLOCK: tl.constexpr,
    ACC: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    row_ok = rows < n
    dims = tl.arange(0, D_P2)
    dim_ok = dims < D
    levels_idx = tl.arange(0, K_P2)
    tile = row_ok[:, None] & dim_ok[None, :]
    u = tl.load(u0_ptr + rows[:, None] * D + dims[None, :], mask=tile, other=0.0).to(ACC)
    h = tl.load(h_ptr + dims, mask=dim_ok, other=0.0).to(ACC)[None, :]
    c0 = tl.load(c0_ptr + dims, mask=dim_ok, other=0.0).to(ACC)[None, :]
    c1 = tl.load(c1_ptr + dims, mask=dim_ok, other=0.0).to(ACC)[None, :]
    levels = tl.load(barriers_ptr + levels_idx, mask=levels_idx < K, other=float("inf")).to(ACC)[None, :]
    last = tl.sum(tl.where(levels_idx == K - 1, levels, 0.0), axis=1)  # (1,): the last level
    q = 0.5 * tl.sum(h * u * u, axis=1)
    exits = tl.where(q[:, None] >= levels, step_offset, tl.full((BLOCK, K_P2), -1, tl.int64))  # out at the start
    alive = row_ok & (q < tl.max(last, axis=0))
    n_alive = tl.sum(alive.to(tl.int32), axis=0)
    i = 0
    while (i < num_steps) & (n_alive > 0):
        step = step_offset + i
        var = lr * (c0 + c1 * q[:, None])  # (BLOCK, D_P2): lr * C_i(u)
        if GIVEN_NOISE:
            xi = tl.load(normals_ptr + (i * n + rows[:, None]) * D + dims[None, :], mask=tile, other=0.0).to(ACC)
            uniform = tl.load(uniforms_ptr + i * n + rows, mask=row_ok, other=1.0).to(ACC)
        else:
            counter = (step.to(tl.int64) * n + rows[:, None]) * D_P2 + dims[None, :]  # unique per draw
            r1, r2, r3, _ = tl.randint4x(seed, counter)
            xi0, _ = tl.random.pair_uniform_to_normal(
                tl.random.uint_to_uniform_float(r1), tl.random.uint_to_uniform_float(r2)
            )
            xi = xi0.to(ACC)
            uniform = tl.sum(tl.where(dims[None, :] == 0, tl.random.uint_to_uniform_float(r3), 0.0), axis=1).to(ACC)
        u_new = u - h * u * dt + tl.sqrt(var * dt) * xi
        q_new = 0.5 * tl.sum(h * u_new * u_new, axis=1)
        crossed = q_new[:, None] >= levels
        if BRIDGE:
            g0 = tl.sum(h * h * u * u, axis=1)  # |grad q|² at the start and the end of the step
            g1 = tl.sum(h * h * u_new * u_new, axis=1)
            ok = (g0 > 0) & (g1 > 0)
            safe0, safe1 = tl.where(ok, g0, 1.0), tl.where(ok, g1, 1.0)
            s2 = tl.sum(h * h * u * u * var, axis=1) / safe0  # noise variance along grad q
            k0 = tl.sum(h * h * h * u * u, axis=1) / safe0  # curvature of q along grad q
            k1 = tl.sum(h * h * h * u_new * u_new, axis=1) / safe1
            finite = levels < float("inf")  # an infinite level is never crossed: keep its gap finite, p = 0
            d0 = _distance(tl.where(finite, levels - q[:, None], 1.0), tl.sqrt(safe0)[:, None], k0[:, None])
            d1 = _distance(tl.where(finite, levels - q_new[:, None], 1.0), tl.sqrt(safe1)[:, None], k1[:, None])
            ok = ok & (s2 > 0)
            exponent = -2.0 * d0 * d1 / (tl.where(ok, s2, 1.0)[:, None] * dt)
            p = tl.where(ok[:, None] & finite, tl.exp(exponent), 0.0)
            crossed = crossed | (uniform[:, None] < p)
        record = alive[:, None] & crossed & (exits < 0)
        exits = tl.where(record, step + 1, exits)
        u = tl.where(alive[:, None], u_new, u)
        q = tl.where(alive, q_new, q)
        last_exit = tl.sum(tl.where(levels_idx[None, :] == K - 1, exits, 0), axis=1)
        alive = alive & (last_exit < 0)
        n_alive = tl.sum(alive.to(tl.int32), axis=0)
        i += 1
    out_tile = row_ok[:, None] & (levels_idx[None, :] < K)
    tl.store(exit_ptr + rows[:, None] * K + levels_idx[None, :], exits, mask=out_tile)
    tl.store(final_ptr + rows[:, None] * D + dims[None, :], u.to(final_ptr.dtype.element_ty), mask=tile)


def _check_inputs(
    u0: torch.Tensor,
    h: torch.Tensor,
    c0: torch.Tensor,
    c1: torch.Tensor,
    barriers: torch.Tensor,
    lr: float,
    dt: float,
    num_steps: int,
    seed: int,
    step_offset: int,
    normals: torch.Tensor | None,
    uniforms: torch.Tensor | None,
) -> None:
    if not isinstance(u0, torch.Tensor) or u0.ndim != 2 or u0.dtype not in DTYPES:
        raise ValueError(f"u0 must be a float32 or float64 (N, D) tensor of start states, got {_describe(u0)}")
    n, d = u0.shape
    if d < 1:
        raise ValueError("u0 must have at least one coordinate (D >= 1)")
    for name, t in (("h", h), ("c0", c0), ("c1", c1)):
        if not isinstance(t, torch.Tensor) or t.shape != (d,) or t.dtype != u0.dtype or t.device != u0.device:
            raise ValueError(f"{name} must be a ({d},) tensor like u0 ({u0.dtype}, {u0.device}), got {_describe(t)}")
    if bool((h <= 0).any()) or not bool(torch.isfinite(h).all()):
        raise ValueError("h (the curvatures of the basin) must be finite and > 0 in every coordinate")
    if bool((c0 < 0).any()) or bool((c1 < 0).any()) or not bool(torch.isfinite(c0).all() & torch.isfinite(c1).all()):
        raise ValueError("c0 and c1 (the noise covariance coefficients) must be finite and >= 0")
    if not isinstance(barriers, torch.Tensor) or barriers.ndim != 1 or len(barriers) < 1:
        raise ValueError(f"barriers must be a (K,) tensor of increasing excess-loss levels, got {_describe(barriers)}")
    if barriers.dtype != u0.dtype or barriers.device != u0.device:
        raise ValueError(f"barriers must have u0's dtype and device ({u0.dtype}, {u0.device})")
    if not bool((barriers > 0).all()) or not bool((barriers[1:] > barriers[:-1]).all()):
        raise ValueError(f"barriers must be > 0 and strictly increasing (inf: never), got {barriers.tolist()}")
    for name, value in (("lr", lr), ("dt", dt)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    for name, value in (("num_steps", num_steps), ("seed", seed), ("step_offset", step_offset)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if (normals is None) != (uniforms is None):
        raise ValueError("normals and uniforms go together: pass both (exact comparisons) or neither")
    if normals is not None and uniforms is not None:
        if normals.shape != (num_steps, n, d) or normals.dtype != u0.dtype or normals.device != u0.device:
            raise ValueError(f"normals must be a ({num_steps}, {n}, {d}) tensor like u0, got {_describe(normals)}")
        if uniforms.shape != (num_steps, n) or uniforms.dtype != u0.dtype or uniforms.device != u0.device:
            raise ValueError(f"uniforms must be a ({num_steps}, {n}) tensor like u0, got {_describe(uniforms)}")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {tuple(value.shape)} on {value.device}"
    return type(value).__name__


def _reference_generator(seed: int, step_offset: int, device: torch.device) -> torch.Generator:
    """The reference's stream for ``(seed, step_offset)``: a fixed mix of the two into one 63-bit seed."""
    mixed = (seed * 0x9E3779B97F4A7C15 + step_offset * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(mixed)


def sde_exit_reference(
    u0: torch.Tensor,
    h: torch.Tensor,
    c0: torch.Tensor,
    c1: torch.Tensor,
    barriers: torch.Tensor,
    lr: float,
    dt: float,
    num_steps: int,
    *,
    seed: int = 0,
    step_offset: int = 0,
    bridge: bool = True,
    normals: torch.Tensor | None = None,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager PyTorch Euler–Maruyama with exit detection, the module docstring's equations; the kernel's signature.

    The noise of ``_DRAW_CHUNK`` steps is drawn at once, and every ``_COMPACT_EVERY`` steps the particles that
    have crossed the last level are dropped, so the cost follows the particles still inside.
    """
    _check_inputs(u0, h, c0, c1, barriers, lr, dt, num_steps, seed, step_offset, normals, uniforms)
    d = u0.shape[1]
    generator = _reference_generator(seed, step_offset, u0.device) if normals is None else None
    q0 = 0.5 * (h * u0 * u0).sum(1)
    exits = torch.where(q0[:, None] >= barriers, step_offset, -1)  # a level exceeded at the start: crossed at once
    final = u0.clone()
    index = torch.nonzero(exits[:, -1] < 0).flatten()  # the particles inside
    u, ex = u0[index], exits[index]
    # (u², q, |grad q|², curvature along grad q), carried from step to step
    geometry: tuple[torch.Tensor, ...] = _geometry(u, h)
    alive = torch.ones(len(index), dtype=torch.bool, device=u0.device)
    xi_chunk = unif_chunk = torch.empty(0)
    for i in range(num_steps):
        if i % _COMPACT_EVERY == 0 and i > 0:  # write back, keep the particles still inside
            exits[index], final[index] = ex, u
            if normals is None and i % _DRAW_CHUNK:
                xi_chunk, unif_chunk = xi_chunk[:, alive], unif_chunk[:, alive]
            index, u, ex = index[alive], u[alive], ex[alive]
            geometry, alive = tuple(t[alive] for t in geometry), alive[alive]
        if len(index) == 0:
            break
        if normals is not None and uniforms is not None:
            xi, uniform = normals[i, index], uniforms[i, index]
        else:
            if i % _DRAW_CHUNK == 0:
                size = (min(_DRAW_CHUNK, num_steps - i), len(index))
                xi_chunk = torch.randn(*size, d, generator=generator, dtype=u0.dtype, device=u0.device)
                unif_chunk = torch.rand(*size, generator=generator, dtype=u0.dtype, device=u0.device)
            xi, uniform = xi_chunk[i % _DRAW_CHUNK], unif_chunk[i % _DRAW_CHUNK]
        uu, q, g, kappa = geometry
        var = lr * (c0 + c1 * q[:, None])  # lr * C(u)
        u_new = u - h * u * dt + (var * dt).sqrt() * xi
        new = _geometry(u_new, h)
        crossed = new[1][:, None] >= barriers
        if bridge:
            s2 = (h * h * uu * var).sum(1) / g.clamp(min=1e-300)  # noise variance along grad q
            crossed |= uniform[:, None] < _bridge_probability((q, g, kappa), new[1:], s2, barriers, dt)
        ex = torch.where(crossed & (ex < 0), step_offset + i + 1, ex)  # a particle that left has every level
        u = torch.where(alive[:, None], u_new, u)  # frozen at its exit
        geometry = tuple(
            torch.where(alive[:, None] if t.ndim == 2 else alive, t_new, t) for t, t_new in zip(geometry, new)
        )
        alive = ex[:, -1] < 0
    exits[index], final[index] = ex, u
    return exits, final


def _geometry(u: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``u²``, ``q = ½ Σ h u²``, ``|grad q|² = Σ h² u²`` and the curvature of ``q`` along its gradient."""
    uu = u * u
    g = (h * h * uu).sum(1)
    return uu, 0.5 * (h * uu).sum(1), g, (h**3 * uu).sum(1) / g.clamp(min=1e-300)


def _bridge_probability(
    start: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    end: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    s2: torch.Tensor,
    barriers: torch.Tensor,
    dt: float,
) -> torch.Tensor:
    """``(n, K)`` probability that the path crossed each level within the step, given both ends inside.

    ``start`` and ``end``: ``(q, |grad q|², curvature along grad q)`` at the two ends; ``s2``: the noise variance
    along grad q. The distance to a level is taken along the gradient of ``q``, to the quadric itself
    (:func:`_distance_reference`): exact in 1-D and for isotropic basins, where the level set is a sphere.
    """
    (q0, g0, k0), (q1, g1, k1) = start, end
    finite = torch.isfinite(barriers)  # an infinite level is never crossed: keep its gap finite, p = 0
    ok = (g0 > 0) & (g1 > 0) & (s2 > 0)
    d0 = _distance_reference(torch.where(finite, barriers - q0[:, None], 1.0), g0.sqrt()[:, None], k0[:, None])
    d1 = _distance_reference(torch.where(finite, barriers - q1[:, None], 1.0), g1.sqrt()[:, None], k1[:, None])
    p = torch.exp(-2 * d0 * d1 / (torch.where(ok, s2, 1.0)[:, None] * dt))
    return torch.where(ok[:, None] & finite, p, 0.0)


def _distance_reference(gap: torch.Tensor, slope: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
    """Distance along grad q to the level ``q + gap``: the root of ``gap = slope t + ½ curvature t²``."""
    return 2 * gap / (slope + (slope * slope + 2 * curvature * gap).clamp(min=0).sqrt())


def sde_exit_triton(
    u0: torch.Tensor,
    h: torch.Tensor,
    c0: torch.Tensor,
    c1: torch.Tensor,
    barriers: torch.Tensor,
    lr: float,
    dt: float,
    num_steps: int,
    *,
    seed: int = 0,
    step_offset: int = 0,
    bridge: bool = True,
    normals: torch.Tensor | None = None,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused Triton kernel behind ``sde_exit`` (CUDA tensors, or ``TRITON_INTERPRET=1`` on CPU)."""
    _check_inputs(u0, h, c0, c1, barriers, lr, dt, num_steps, seed, step_offset, normals, uniforms)
    n, d = u0.shape
    k = len(barriers)
    u0, h, c0, c1, barriers = (t.contiguous() for t in (u0, h, c0, c1, barriers))
    exits = torch.empty((n, k), dtype=torch.long, device=u0.device)
    final = torch.empty_like(u0)
    if n == 0:
        return exits, final
    given = normals is not None
    noise = normals.contiguous() if normals is not None else u0  # a placeholder pointer when not given
    unif = uniforms.contiguous() if uniforms is not None else u0
    meta: dict[str, Any] = {
        "D": d,
        "D_P2": triton.next_power_of_2(d),
        "K": k,
        "K_P2": triton.next_power_of_2(k),
        "BRIDGE": bool(bridge),
        "GIVEN_NOISE": given,
        "BLOCK": _BLOCK,
        "ACC": tl.float64 if u0.dtype == torch.float64 else tl.float32,
    }
    with torch.cuda.device_of(u0):
        _sde_exit_kernel[(triton.cdiv(n, _BLOCK),)](
            u0, h, c0, c1, barriers, noise, unif, exits, final,
            n, num_steps, step_offset, seed, float(lr), float(dt), **meta,
        )  # fmt: skip
    return exits, final


def _make_inputs(size: int, device: torch.device, dtype: torch.dtype) -> tuple[Any, ...]:
    """Benchmark inputs: ``size`` particles of the chapter's 1-D power-law basin (h = 2, L* = 1, B = 1, lr = 0.5:
    c0 = c1 = 4), started at the minimum, with exit levels ΔL = 1, 4 and 9, for 2,000 steps of dt = 0.01."""
    u0 = torch.zeros(size, 1, device=device, dtype=dtype)
    h = torch.full((1,), 2.0, device=device, dtype=dtype)
    c = torch.full((1,), 4.0, device=device, dtype=dtype)
    return u0, h, c, c.clone(), torch.tensor([1.0, 4.0, 9.0], device=device, dtype=dtype), 0.5, 0.01, 2_000


SDE_EXIT = register(
    KernelSpec(
        name="sde_exit",
        reference=sde_exit_reference,
        triton=sde_exit_triton,
        make_inputs=_make_inputs,
        sizes=(4_096, 65_536),  # the reference, a loop over steps, took 2.7 s a call at 65,536 on an H200
        draws_random=True,
    )
)


def sde_exit(
    u0: torch.Tensor,
    h: torch.Tensor,
    c0: torch.Tensor,
    c1: torch.Tensor,
    barriers: torch.Tensor,
    lr: float,
    dt: float,
    num_steps: int,
    *,
    seed: int = 0,
    step_offset: int = 0,
    bridge: bool = True,
    normals: torch.Tensor | None = None,
    uniforms: torch.Tensor | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulate ``num_steps`` Euler–Maruyama steps of ``N`` particles and detect their exits (module docs).

    ``u0``: ``(N, D)`` start states (float32 or float64); ``h``, ``c0``, ``c1``: ``(D,)`` curvatures and noise
    coefficients, ``C_i(u) = c0_i + c1_i q(u)``; ``barriers``: ``(K,)`` increasing levels of ``q``. ``lr``: the
    learning rate that scales the noise; ``dt``: the time step. ``seed`` and ``step_offset``: the random stream
    and the step count to start from (a chunked run). ``bridge``: the Brownian-bridge crossing test. ``normals``
    ``(num_steps, N, D)`` and ``uniforms`` ``(num_steps, N)``: given noise instead of drawn noise. Returns
    ``(exit_steps, final)``: ``(N, K)`` int64 step counts (``-1``: not crossed) and ``(N, D)`` states.
    ``backend``: ``"auto"`` (Triton on CUDA), ``"triton"`` or ``"reference"``.
    """
    out: tuple[torch.Tensor, torch.Tensor] = SDE_EXIT(
        u0, h, c0, c1, barriers, lr, dt, num_steps,
        seed=seed, step_offset=step_offset, bridge=bridge, normals=normals, uniforms=uniforms, backend=backend,
    )  # fmt: skip
    return out
