"""One training loop for every chapter: seeding, device choice, progress bars, history, checkpoints.

A chapter writes a ``step(batch) -> dict of floats`` closure that does forward, backward and the
optimiser update, and hands it to :func:`fit` together with an iterable of batches::

    history = fit(step, batches, num_steps=500, desc="IRN x2")
    history.plot("loss")

Evaluation stays in each method's ``evaluate(...)``: it differs too much between methods to share.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from reprobook._validate import check_choice

DEVICES = ("auto", "cpu", "cuda")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def device(preference: str | None = None) -> torch.device:
    """The device to train on: ``REPROBOOK_DEVICE`` or ``preference`` (``auto`` = CUDA when present)."""
    name = preference or os.environ.get("REPROBOOK_DEVICE", "auto")
    check_choice("device", name, DEVICES)
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch.cuda.is_available() is False")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@dataclass
class History:
    """Per-step metrics recorded by :func:`fit`: ``history["loss"]`` is a list of floats."""

    metrics: dict[str, list[float]] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)

    def append(self, step: int, values: Mapping[str, float]) -> None:
        self.steps.append(step)
        for key, value in values.items():
            self.metrics.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        check_choice("key", key, list(self.metrics))
        return self.metrics[key]

    def last(self, key: str, window: int = 1) -> float:
        """Mean of the last ``window`` recorded values of ``key``."""
        values = self[key][-window:]
        return sum(values) / len(values)

    def plot(self, *keys: str, ax: Any = None, smooth: int = 1, logy: bool = False) -> Any:
        """Plot the named metrics against the step (running mean over ``smooth`` steps)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        for key in keys or tuple(self.metrics):
            values = np.asarray(self[key])
            if smooth > 1 and len(values) >= smooth:
                values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
            ax.plot(self.steps[len(self.steps) - len(values) :], values, label=key)
        ax.set_xlabel("step")
        if logy:
            ax.set_yscale("log")
        ax.legend()
        return ax


def _cycle(batches: Iterable[Any]) -> Iterator[Any]:
    """Iterate over ``batches`` forever (re-iterating a DataLoader starts a new epoch)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("batches is empty: it must yield at least one batch")


def fit(
    step: Callable[[Any], Mapping[str, float]],
    batches: Iterable[Any],
    num_steps: int,
    *,
    desc: str = "training",
    log_every: int = 1,
    progress: bool = True,
) -> History:
    """Call ``step(batch)`` ``num_steps`` times, cycling over ``batches``; record what it returns.

    ``step`` returns a mapping of scalar metrics (at least ``"loss"`` by convention). The progress
    bar (``tqdm.auto``: a widget in notebooks, text elsewhere) shows the latest values.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    history = History()
    bar = tqdm(range(1, num_steps + 1), desc=desc, disable=not progress, mininterval=0.5)
    for index, batch in zip(bar, _cycle(batches)):
        values = {key: float(value) for key, value in step(batch).items()}
        if index % log_every == 0 or index == num_steps:
            history.append(index, values)
            bar.set_postfix({key: f"{value:.4g}" for key, value in values.items()}, refresh=False)
    return history


def save_checkpoint(path: str | Path, model: torch.nn.Module, **extra: Any) -> Path:
    """Save ``model.state_dict()`` plus plain extras (numbers, strings, tensors) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), **extra}, path)
    return path


def load_checkpoint(path: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint` into ``model`` (``weights_only=True``).

    Returns the extras stored beside the weights.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state.pop("model"))
    return state
