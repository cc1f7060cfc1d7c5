"""The fused Euler–Maruyama exit kernel against its PyTorch reference.

With the noise given (``normals``, ``uniforms``) both backends must agree exactly (float rounding aside); with
drawn noise their random streams differ, so they must agree in distribution: exit-time means within their
Monte-Carlo error and a two-sample Kolmogorov–Smirnov test. Sizes are small: the interpreter runs Philox in NumPy.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from reprobook.kernels import get, sde_exit, sde_exit_reference
from reprobook.kernels.testing import assert_matches_reference


def _basin(d: int, device: torch.device, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """Curvatures and noise coefficients of an anisotropic power-law basin in ``d`` coordinates."""
    h = torch.tensor([2.0, 1.0, 0.5, 3.0][:d], device=device, dtype=dtype)
    return h, 2 * h, 2 * h  # c0 = 2 h L* / B and c1 = 2 h / B with L* = B = 1


@pytest.mark.parametrize("bridge", [True, False], ids=["bridge", "no-bridge"])
@pytest.mark.parametrize(("n", "d", "k"), [(130, 1, 1), (7, 2, 3), (129, 3, 2), (1, 1, 4)], ids=str)
def test_given_noise_matches_exactly(n: int, d: int, k: int, bridge: bool, device: torch.device) -> None:
    torch.manual_seed(n + d + k)
    steps = 40
    h, c0, c1 = _basin(d, device)
    u0 = 0.3 * torch.randn(n, d, device=device)
    barriers = torch.tensor([0.3, 0.6, 1.0, 2.0][:k], device=device)
    normals, uniforms = torch.randn(steps, n, d, device=device), torch.rand(steps, n, device=device)
    assert_matches_reference(
        "sde_exit", u0, h, c0, c1, barriers, 0.5, 0.02, steps,
        atol=1e-5, rtol=1e-5, check_grad=False, bridge=bridge, normals=normals, uniforms=uniforms,
    )  # fmt: skip


def test_float64_and_step_offset(device: torch.device) -> None:
    torch.manual_seed(0)
    t = {"device": device, "dtype": torch.float64}
    h, c0, c1 = _basin(2, device, torch.float64)
    u0, barriers = 0.2 * torch.randn(33, 2, **t), torch.tensor([0.5, 1.5], **t)
    normals, uniforms = torch.randn(25, 33, 2, **t), torch.rand(25, 33, **t)
    options = {"step_offset": 1000, "normals": normals, "uniforms": uniforms}
    assert_matches_reference("sde_exit", u0, h, c0, c1, barriers, 0.5, 0.05, 25, check_grad=False, **options)
    exits, final = sde_exit(u0, h, c0, c1, barriers, 0.5, 0.05, 25, backend="triton", **options)
    assert exits.dtype == torch.long and final.dtype == torch.float64
    crossed = exits[exits >= 0]
    assert crossed.numel() and bool(((crossed > 1000) & (crossed <= 1025)).all())  # counted from step_offset


def test_drawn_noise_agrees_in_distribution(device: torch.device) -> None:
    """1-D power-law basin (h = 2, L* = B = 1, lr = 0.5), exit at ΔL = 0.5: the two streams, side by side."""
    n, dt = 512, 0.02
    h, c0, c1 = _basin(1, device, torch.float64)
    u0 = torch.zeros(n, 1, device=device, dtype=torch.float64)
    barriers = torch.tensor([0.5], device=device, dtype=torch.float64)
    times = {}
    for backend in ("triton", "reference"):
        exits, _ = sde_exit(u0, h, c0, c1, barriers, 0.5, dt, 2000, seed=3, backend=backend)
        assert bool((exits >= 0).all()), "every particle leaves within 40 time units"
        times[backend] = exits[:, 0].double().cpu() * dt
    a, b = times["triton"], times["reference"]
    se = math.sqrt(a.var() / n + b.var() / n)
    assert abs(float(a.mean() - b.mean())) < 4 * se
    assert stats.ks_2samp(a.numpy(), b.numpy()).pvalue > 1e-3


def test_same_seed_same_result_and_chunks_continue_the_stream(device: torch.device) -> None:
    """Philox is counted by absolute step, so 2 chunks of 15 steps are one run of 30."""
    h, c0, c1 = _basin(1, device)
    u0, barriers = torch.zeros(128, 1, device=device), torch.tensor([1.0, 2.0], device=device)
    whole = sde_exit(u0, h, c0, c1, barriers, 0.5, 0.05, 30, seed=7, backend="triton")
    again = sde_exit(u0, h, c0, c1, barriers, 0.5, 0.05, 30, seed=7, backend="triton")
    assert torch.equal(whole[0], again[0]) and torch.equal(whole[1], again[1])
    first, u_mid = sde_exit(u0, h, c0, c1, barriers, 0.5, 0.05, 15, seed=7, backend="triton")
    second, u_end = sde_exit(u_mid, h, c0, c1, barriers, 0.5, 0.05, 15, seed=7, step_offset=15, backend="triton")
    inside = first[:, 1] < 0  # particles that left in the first chunk stop there
    assert torch.equal(torch.where(first >= 0, first, second)[inside], whole[0][inside])
    torch.testing.assert_close(u_end[inside], whole[1][inside])
    other = sde_exit(u0, h, c0, c1, barriers, 0.5, 0.05, 30, seed=8, backend="triton")
    assert not torch.equal(whole[1], other[1])


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_edge_cases(backend: str, device: torch.device) -> None:
    h, c0, c1 = _basin(2, device)
    barriers = torch.tensor([0.5, 1.0], device=device)
    empty = sde_exit(torch.zeros(0, 2, device=device), h, c0, c1, barriers, 0.5, 0.01, 5, backend=backend)
    assert empty[0].shape == (0, 2) and empty[1].shape == (0, 2)
    outside = torch.tensor([[0.0, 0.0], [0.9, 0.0], [5.0, 0.0]], device=device)  # q = 0, 0.81, 25
    exits, final = sde_exit(outside, h, c0, c1, barriers, 0.5, 0.01, 0, step_offset=4, backend=backend)
    assert exits.tolist() == [[-1, -1], [4, -1], [4, 4]]  # levels exceeded at the start count as crossed at once
    torch.testing.assert_close(final, outside)
    never = torch.tensor([math.inf], device=device)
    exits, final = sde_exit(torch.zeros(5, 2, device=device), h, c0, c1, never, 0.5, 0.01, 20, backend=backend)
    assert bool((exits == -1).all()) and bool(final.abs().sum() > 0)  # moved, never left


def test_bad_inputs_name_the_argument(device: torch.device) -> None:
    h, c0, c1 = _basin(1, device)
    u0, barriers = torch.zeros(4, 1, device=device), torch.tensor([1.0], device=device)
    with pytest.raises(ValueError, match="dt must be a finite number > 0"):
        sde_exit(u0, h, c0, c1, barriers, 0.5, 0.0, 10, backend="triton")
    with pytest.raises(ValueError, match="strictly increasing"):
        sde_exit(u0, h, c0, c1, torch.tensor([1.0, 1.0], device=device), 0.5, 0.01, 10)
    with pytest.raises(ValueError, match="h .*> 0"):
        sde_exit(u0, -h, c0, c1, barriers, 0.5, 0.01, 10)
    with pytest.raises(ValueError, match="u0 must be"):
        sde_exit(u0[:, 0], h, c0, c1, barriers, 0.5, 0.01, 10)
    with pytest.raises(ValueError, match="normals and uniforms go together"):
        sde_exit(u0, h, c0, c1, barriers, 0.5, 0.01, 10, normals=torch.zeros(10, 4, 1, device=device))
    with pytest.raises(ValueError, match="num_steps"):
        sde_exit_reference(u0, h, c0, c1, barriers, 0.5, 0.01, -1)


def test_benchmark_inputs(device: torch.device) -> None:
    spec = get("sde_exit")
    inputs = spec.make_inputs(64, device, torch.float32)
    assert inputs[0].shape == (64, 1) and inputs[4].tolist() == [1.0, 4.0, 9.0]
    exits, final = spec(*inputs[:5], 0.5, 0.01, 50, backend="triton")
    assert exits.shape == (64, 3) and final.shape == (64, 1)
