"""Kernel tests run the Triton kernels: on CPU under ``TRITON_INTERPRET=1`` (set before import), or on CUDA.

Without either, every test in this directory is skipped with the reason; the Makefile runs this directory
in its own process with ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reprobook.kernels import _triton

HERE = Path(__file__).parent


def _skip_reason() -> str | None:
    if not _triton.triton_available():
        return "Triton is not installed or failed to import"
    if _triton.INTERPRET or torch.cuda.is_available():
        return None
    return "kernel tests need a CUDA GPU or TRITON_INTERPRET=1 (e.g. `TRITON_INTERPRET=1 pytest tests/kernels`)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason is not None:
        for item in items:
            if HERE in item.path.parents:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def device() -> torch.device:
    """Where the Triton path runs: CPU under the interpreter, else the GPU."""
    return torch.device("cpu" if _triton.INTERPRET else "cuda")


@pytest.fixture(autouse=True)
def _seed_and_clear_backend_env(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    monkeypatch.delenv("REPROBOOK_KERNELS", raising=False)
