"""One training loop for every method: seeding, device choice, progress, evaluation schedule, clock, history.

A method writes a ``step(batch) -> dict of floats`` closure that does forward, backward and the optimiser
update, and hands it to :func:`fit` with an iterable of batches and, optionally, an ``evaluate(step)``
callable that :func:`fit` runs every ``eval_every`` steps::

    history = fit(step, batches, num_steps=500, evaluate=validate, eval_every=50, desc="IRN x2")
    history.plot("loss")            # per-step values returned by step()
    history.curve("val_psnr")       # (steps, values) returned by evaluate()
    history.seconds                 # training time, evaluation excluded (measured, never estimated)

:func:`fit` owns the clock: it measures the time spent fetching batches and running ``step`` and leaves out
the time spent in ``evaluate``, so every method's training times mean the same thing. It stops with
:class:`NonFiniteLossError` (naming the step and every term) the moment a step returns NaN or infinity.

Every method's ``train(...)`` returns a subclass of :class:`RunResult`; every ``evaluate(...)`` a subclass
of :class:`Scores`, whose ``row()`` is one line of a side-by-side table.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from tqdm.std import tqdm as text_tqdm

from reprobook._validate import check_choice, check_int
from reprobook.nn.utils import count_parameters

DEVICES = ("auto", "cpu", "cuda")
PROGRESS_ENV = "REPROBOOK_PROGRESS"
"""``REPROBOOK_PROGRESS=text`` draws progress bars as text lines (the book build sets it: a static page cannot show a
live widget, and the build's terminal shows the text line as the chapter runs)."""


class NonFiniteLossError(FloatingPointError):
    """A training step returned NaN or infinity: the run has diverged and every later step would be garbage."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded the same way."""
    check_int("seed", seed)
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


@dataclass(frozen=True)
class EvalPoint:
    """One evaluation during training: after ``step`` steps and ``seconds`` of training (evaluation excluded)."""

    step: int
    seconds: float
    metrics: dict[str, float]


@dataclass
class History:
    """What :func:`fit` records.

    * ``steps`` and ``metrics``: the values ``step()`` returned, every ``log_every`` steps (``history["loss"]``);
    * ``evaluations``: one :class:`EvalPoint` per call of ``evaluate`` (``history.curve("valid_loss")``);
    * ``num_steps`` and ``seconds``: steps taken and training seconds so far, evaluation excluded.
    """

    metrics: dict[str, list[float]] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)
    evaluations: list[EvalPoint] = field(default_factory=list)
    num_steps: int = 0
    seconds: float = 0.0

    def append(self, step: int, values: Mapping[str, float]) -> None:
        """Record the per-step ``values`` of ``step``."""
        self.steps.append(step)
        for key, value in values.items():
            self.metrics.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        check_choice("key", key, list(self.metrics))
        return self.metrics[key]

    def last(self, key: str, window: int = 1) -> float:
        """Mean of the last ``window`` recorded values of ``key``."""
        check_int("window", window, 1)
        values = self[key][-window:]
        return sum(values) / len(values)

    @property
    def eval_keys(self) -> list[str]:
        """The metric names ``evaluate`` returned, in order of first appearance."""
        return list(dict.fromkeys(key for point in self.evaluations for key in point.metrics))

    def curve(self, key: str, *, against: str = "step") -> tuple[list[float], list[float]]:
        """``(x, values)`` of the evaluation metric ``key``; ``x`` is the step, or with ``against="seconds"``
        the training seconds at that evaluation."""
        check_choice("key", key, self.eval_keys)
        check_choice("against", against, ("step", "seconds"))
        points = [p for p in self.evaluations if key in p.metrics]
        xs = [float(p.step) if against == "step" else p.seconds for p in points]
        return xs, [p.metrics[key] for p in points]

    def seconds_to(self, key: str, target: float) -> float | None:
        """Training seconds at the first evaluation where ``key <= target``; ``None`` if it never got there."""
        for seconds, value in zip(*self.curve(key, against="seconds")):
            if value <= target:
                return seconds
        return None

    def plot(self, *keys: str, ax: Any = None, smooth: int = 1, logy: bool = False) -> Any:
        """Plot the named metrics against the step: per-step ones as lines (running mean over ``smooth``
        steps), evaluation ones as lines with markers. No keys: every per-step metric. ``logy``: a log-scaled y
        axis labelled with plain numbers (:func:`plain_log_ticks`)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        for key in keys or tuple(self.metrics):
            if key in self.metrics:
                values = np.asarray(self[key])
                if smooth > 1 and len(values) >= smooth:
                    values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
                ax.plot(self.steps[len(self.steps) - len(values) :], values, label=key)
            else:
                ax.plot(*self.curve(key), marker="o", label=key)
        ax.set_xlabel("step")
        if logy:
            ax.set_yscale("log")
            plain_log_ticks(ax.yaxis)
        ax.legend()
        return ax


def plain_log_ticks(axis: Any) -> None:
    """Label a log-scaled matplotlib axis (``ax.yaxis``) with plain numbers, ``3.8`` rather than ``3.8 x 10^0``;
    the ticks between powers of ten are labelled only while the axis spans about a decade or less."""
    from matplotlib.ticker import LogFormatter  # here: the library imports without matplotlib's start-up cost

    axis.set_major_formatter(LogFormatter())
    axis.set_minor_formatter(LogFormatter())


@dataclass
class BestCheckpoint:
    """Selection on validation: the evaluation with the best score so far and a copy of the parameters there.

    ``lower_is_better``: a loss (True) or a score such as MRR (False). Only a strictly better, comparable score
    replaces the kept one (NaN never does); ``step`` is None until something was kept.
    """

    lower_is_better: bool = True
    step: int | None = None
    score: float = math.nan
    state: dict[str, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if math.isnan(self.score):
            self.score = math.inf if self.lower_is_better else -math.inf

    def offer(self, step: int, score: float, model: torch.nn.Module) -> bool:
        """Keep a copy of ``model``'s parameters if ``score`` beats the kept one; True if it did."""
        if not (score < self.score if self.lower_is_better else score > self.score):
            return False
        self.step, self.score = step, score
        self.state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        return True

    def restore(self, model: torch.nn.Module) -> bool:
        """Load the kept parameters into ``model``; False (and ``model`` unchanged) if nothing was kept."""
        if self.state is None:
            return False
        model.load_state_dict(self.state)
        return True


def _cycle(batches: Iterable[Any]) -> Iterator[Any]:
    """Iterate over ``batches`` forever (re-iterating a DataLoader starts a new epoch)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("batches is empty: it must yield at least one batch")


def _finite(values: Mapping[str, float], step: int, desc: str) -> None:
    bad = [key for key, value in values.items() if not math.isfinite(value)]
    if bad:
        terms = ", ".join(f"{key}={value:.4g}" for key, value in values.items())
        raise NonFiniteLossError(
            f"{desc}: step {step} returned non-finite {', '.join(bad)} ({terms}); the run has diverged. "
            "Lower the learning rate, check the loss weights and the inputs, or clip gradients."
        )


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """``tqdm.auto`` (a widget in notebooks), or a plain text bar when ``REPROBOOK_PROGRESS=text``."""
    if os.environ.get(PROGRESS_ENV, "").strip() == "text":
        return text_tqdm(total=total, desc=desc, disable=not enabled, mininterval=2.0, ncols=100, file=sys.stderr)
    return tqdm(total=total, desc=desc, disable=not enabled, mininterval=0.5)


def fit(
    step: Callable[[Any], Mapping[str, float]],
    batches: Iterable[Any],
    num_steps: int,
    *,
    evaluate: Callable[[int], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    eval_at_start: bool = False,
    history: History | None = None,
    desc: str = "training",
    log_every: int = 1,
    progress: bool = True,
) -> History:
    """Call ``step(batch)`` ``num_steps`` times, cycling over ``batches``; record what it returns.

    ``step`` returns a mapping of scalar metrics (at least ``"loss"`` by convention); a non-finite value
    raises :class:`NonFiniteLossError`. ``evaluate(step_number)`` returns evaluation metrics; it runs after
    every ``eval_every``-th step (default: ten times per run), after the last step, and before the first with
    ``eval_at_start``. Its time is not counted in ``History.seconds``.

    ``history``: continue an earlier :class:`History` (a second phase of one run): step numbers and the clock
    carry on from it. The progress bar (``tqdm.auto``: a widget in notebooks, text elsewhere) shows the loss.
    """
    check_int("num_steps", num_steps, 1)
    check_int("log_every", log_every, 1)
    if evaluate is not None:
        eval_every = max(1, num_steps // 10) if eval_every is None else check_int("eval_every", eval_every, 1)
    history = History() if history is None else history
    first = history.num_steps

    def run_evaluation() -> None:
        if evaluate is not None:
            metrics = {key: float(value) for key, value in evaluate(history.num_steps).items()}
            history.evaluations.append(EvalPoint(history.num_steps, history.seconds, metrics))

    if eval_at_start:
        run_evaluation()
    bar = _progress_bar(num_steps, desc, progress)
    stream = _cycle(batches)
    try:
        for index in range(1, num_steps + 1):
            start = time.perf_counter()
            values = {key: float(value) for key, value in step(next(stream)).items()}
            history.seconds += time.perf_counter() - start
            history.num_steps = first + index
            _finite(values, history.num_steps, desc)
            if index % log_every == 0 or index == num_steps:
                history.append(history.num_steps, values)
                if "loss" in values:
                    bar.set_postfix_str(f"loss {values['loss']:.4g}", refresh=False)
            if evaluate is not None and eval_every is not None and (index % eval_every == 0 or index == num_steps):
                run_evaluation()
            bar.update()
    finally:
        bar.close()
    return history


def step_decay(
    optimizer: torch.optim.Optimizer, num_steps: int, milestones: Sequence[float], decay: float
) -> torch.optim.lr_scheduler.MultiStepLR:
    """Multiply every learning rate of ``optimizer`` by ``decay`` at each fraction in ``milestones`` of
    ``num_steps`` (call ``scheduler.step()`` once per training step)."""
    check_int("num_steps", num_steps, 1)
    steps = sorted({round(m * num_steps) for m in milestones})
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, steps, gamma=decay)


@dataclass(kw_only=True)
class RunResult:
    """What every method's ``train(...)`` returns (each method subclasses it and adds its own fields).

    ``config``: the run's config; ``model``: the trained network; ``history``: per-step losses, evaluation
    curve and training seconds (:class:`History`); ``metrics``: final numbers (for example the last
    validation scores).
    """

    config: Any
    model: torch.nn.Module
    history: History
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Training seconds, evaluation excluded."""
        return self.history.seconds

    @property
    def num_parameters(self) -> int:
        """Trainable parameters of ``model``."""
        return count_parameters(self.model)


@dataclass(kw_only=True)
class Scores:
    """What every method's ``evaluate(...)`` returns: its metrics, and ``row()`` for side-by-side tables.

    Subclasses add their metrics as fields and list the ones a table shows in ``row()``.
    """

    label: str = ""

    def row(self) -> dict[str, Any]:
        """One table row: ``{"method": label, column name: value, ...}``."""
        raise NotImplementedError(f"{type(self).__name__} must define row()")


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
