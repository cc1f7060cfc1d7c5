"""The harness: registry, dispatch rule, the reference-matching check, the benchmark's CPU path, no-Triton import."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import torch

from reprobook.kernels import ENV_VAR, KernelSpec, _triton, all_kernels, get, register
from reprobook.kernels.softmax import SOFTMAX, softmax_reference
from reprobook.kernels.testing import assert_matches_reference


def _spec(
    name: str = "probe",
    reference: Callable[..., Any] = lambda *args: "reference",
    triton: Callable[..., Any] = lambda *args: "triton",
) -> KernelSpec:
    """A test kernel; by default each implementation returns its backend's name."""
    return KernelSpec(
        name=name,
        reference=reference,
        triton=triton,
        make_inputs=lambda size, device, dtype: (torch.zeros(size, device=device, dtype=dtype),),
        sizes=(8,),
    )


PROBE = _spec()


def test_auto_runs_triton_where_it_can(device: torch.device) -> None:
    assert PROBE(torch.zeros(2, device=device)) == "triton"


@pytest.mark.parametrize(
    "env, expected", [("", "triton"), ("auto", "triton"), (" Reference ", "reference"), ("TRITON", "triton")]
)
def test_env_var_chooses_backend(
    env: str, expected: str, device: torch.device, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, env)
    assert PROBE(torch.zeros(2, device=device)) == expected


def test_backend_argument_overrides_env_var(device: torch.device, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "triton")
    assert PROBE(torch.zeros(2, device=device), backend="reference") == "reference"
    monkeypatch.setenv(ENV_VAR, "reference")
    assert PROBE(torch.zeros(2, device=device), backend="triton") == "triton"


def test_invalid_backend_names_the_argument_and_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"backend='cuda'.*'auto', 'triton', 'reference'"):
        PROBE(torch.zeros(2), backend="cuda")
    monkeypatch.setenv(ENV_VAR, "fast")
    with pytest.raises(ValueError, match=r"REPROBOOK_KERNELS='fast'.*'auto', 'triton', 'reference'"):
        PROBE(torch.zeros(2))


def test_cpu_tensors_without_interpreter_use_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_triton, "INTERPRET", False)
    assert PROBE(torch.zeros(2)) == "reference"
    with pytest.raises(RuntimeError, match=r"backend='triton' asks.*on cpu, not CUDA.*TRITON_INTERPRET=1"):
        PROBE(torch.zeros(2), backend="triton")
    monkeypatch.setenv(ENV_VAR, "triton")
    with pytest.raises(RuntimeError, match=r"REPROBOOK_KERNELS=triton asks"):
        PROBE(torch.zeros(2))


def test_missing_triton_uses_reference(device: torch.device, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_triton, "triton", None)
    assert PROBE(torch.zeros(2, device=device)) == "reference"
    with pytest.raises(RuntimeError, match="Triton is not installed"):
        PROBE(torch.zeros(2, device=device), backend="triton")


def test_registry_lookup() -> None:
    assert get("softmax") is SOFTMAX
    assert "softmax" in [spec.name for spec in all_kernels()]
    with pytest.raises(ValueError, match=r"kernel='sofmax'.*'softmax'"):
        get("sofmax")


def test_register_refuses_a_second_kernel_with_a_taken_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(_spec(name="softmax"))
    assert get("softmax") is SOFTMAX


def test_check_catches_wrong_values(device: torch.device) -> None:
    off_by_one_percent = _spec(reference=softmax_reference, triton=lambda x: 1.01 * softmax_reference(x))
    x = torch.randn(3, 7, device=device, requires_grad=True)
    with pytest.raises(AssertionError, match=r"output 0 differs.*max abs error [0-9.e-]+; worst at index \(\d, \d\)"):
        assert_matches_reference(off_by_one_percent, x)


def test_check_catches_wrong_gradients(device: torch.device) -> None:
    def identity_gradient(x: torch.Tensor) -> torch.Tensor:
        y = softmax_reference(x)
        return y.detach() + (x - x.detach())  # right values, gradient of the identity

    spec = _spec(reference=softmax_reference, triton=identity_gradient)
    x = torch.randn(3, 7, device=device, requires_grad=True)
    with pytest.raises(AssertionError, match="gradient wrt input 0 differs.*max abs error"):
        assert_matches_reference(spec, x)
    assert_matches_reference(spec, x, check_grad=False)
    detached = replace(spec, triton=lambda x: softmax_reference(x).detach())
    with pytest.raises(AssertionError, match="not differentiable"):
        assert_matches_reference(detached, x)
    with pytest.raises(ValueError, match="requires grad"):
        assert_matches_reference("softmax", x.detach())


def _run_python(*args: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` in a fresh process on CPU (no GPU visible) and without ``TRITON_INTERPRET``."""
    environ = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | {"CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, *args], env=environ, capture_output=True, text=True, timeout=120)


def test_bench_without_gpu_prints_one_line_and_exits_0() -> None:
    result = _run_python("-m", "reprobook.kernels.bench")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [result.stdout.strip()]
    assert "no CUDA GPU" in result.stdout


def test_bench_prints_no_error_for_kernels_that_draw_their_own_random_numbers() -> None:
    from reprobook.kernels.bench import error_cell

    x, y = torch.zeros(3), torch.tensor([0.0, 0.5, 0.0])
    assert error_cell(SOFTMAX, x, y) == "5.00e-01"
    assert error_cell(replace(SOFTMAX, draws_random=True), x, y) == "-"
    assert get("sde_exit").draws_random and not get("mix_attention").draws_random


def test_imports_and_falls_back_to_reference_without_triton() -> None:
    code = """
import sys
sys.modules["triton"] = None  # makes `import triton` fail, as on a machine without it
import torch
import reprobook.kernels as kernels
assert not kernels.triton_available()
x = torch.randn(2, 5)
torch.testing.assert_close(kernels.softmax(x), torch.softmax(x, -1))
try:
    kernels.softmax(x, backend="triton")
except RuntimeError as error:
    print(error)
"""
    result = _run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert "Triton is not installed" in result.stdout


def test_without_interpreter_cpu_calls_run_the_reference() -> None:
    code = """
import torch
import reprobook.kernels as kernels
x = torch.randn(2, 5)
assert kernels.choose_backend(None, [x]) == "reference"
torch.testing.assert_close(kernels.softmax(x), torch.softmax(x, -1))
"""
    result = _run_python("-c", code)
    assert result.returncode == 0, result.stderr
