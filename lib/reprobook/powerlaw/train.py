"""One SGD run of the large-batch experiment on the digits: small or large batches, with or without added noise.

The systems of the comparison are all :class:`PowerLawConfig` runs that differ in two fields:

* ``batch_size``: small (SGD's own noise is strong) or large (weak);
* ``noise``: ``"none"``, ``"constant"`` (an isotropic kick of fixed power ``σ²``) or ``"state"`` (power
  ``σ² L_B(θ)``, growing with the mini-batch loss), :func:`~reprobook.powerlaw.model.noisy_sgd_step`.

Every run takes the same number of SGD steps at the same learning rate from the same initialisation (per seed),
so the systems differ only in their noise. :func:`train` goes through :func:`reprobook.train.fit`; its evaluation
records the test accuracy and, with ``track_noise``, the training loss and the noise trace ``𝒩`` of
:func:`~reprobook.powerlaw.measure.gradient_noise` on the training set: the curve of noise against loss.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from reprobook._validate import check_bool, check_choice, check_float, check_int
from reprobook.powerlaw.data import DigitsData, load_data
from reprobook.powerlaw.evaluate import PowerLawScores, evaluate
from reprobook.powerlaw.measure import gradient_noise
from reprobook.powerlaw.model import MLP, noisy_sgd_step
from reprobook.profiles import pick_default
from reprobook.train import RunResult, fit, seed_everything

NOISES = ("none", "constant", "state")


@dataclass
class PowerLawConfig:
    """One SGD run on the digits (module docstring). Sizes follow the profile (:func:`reprobook.pick`).

    ``hidden``: the MLP's layer widths; ``train_size``: training images (the rest are the test set), split with
    ``split_seed``; ``batch_size``, ``lr``, ``num_steps``: plain SGD; ``noise`` and ``noise_scale`` (``σ``): the
    added noise; ``seed``: initialisation, batches and noise; ``eval_every``: steps between evaluations;
    ``track_noise``: measure the loss and the noise trace on the training set at each evaluation.
    """

    hidden: tuple[int, ...] = (128, 128)
    train_size: int = 1000
    split_seed: int = 0
    batch_size: int = 512
    lr: float = 0.1
    num_steps: int = pick_default(smoke=100, book=3000, full=20_000)
    noise: str = "state"
    noise_scale: float = 1.0
    seed: int = 0
    eval_every: int = pick_default(smoke=50, book=500, full=1000)
    track_noise: bool = False

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        if not self.hidden:
            raise ValueError("hidden must name at least one layer width")
        for width in self.hidden:
            check_int("hidden", width, 1)
        check_int("train_size", self.train_size, 10)
        check_int("split_seed", self.split_seed, 0)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0, open_low=True)
        check_int("num_steps", self.num_steps, 1)
        check_choice("noise", self.noise, NOISES)
        check_float("noise_scale", self.noise_scale, 0)
        check_int("seed", self.seed, 0)
        check_int("eval_every", self.eval_every, 1)
        check_bool("track_noise", self.track_noise)

    @property
    def label(self) -> str:
        """``"batch 512 + state-dependent noise"``, ``"batch 16"``, ..."""
        extra = {"none": "", "constant": " + constant noise", "state": " + state-dependent noise"}[self.noise]
        return f"batch {self.batch_size}{extra}"

    def noise_power(self, batch_loss: float) -> float:
        """The power ``v`` of the kick at a step whose mini-batch loss is ``batch_loss``."""
        if self.noise == "none":
            return 0.0
        return self.noise_scale**2 * (batch_loss if self.noise == "state" else 1.0)


@dataclass(kw_only=True)
class PowerLawResult(RunResult):
    """What :func:`train` returns: the trained MLP, its history, the final test scores, and the noise it received.

    ``history["loss"]``: the mini-batch loss per step; ``history["noise_power"]``: the added kick's power ``v``;
    ``history.curve("test_accuracy")`` and, with ``track_noise``, ``curve("train_loss")`` and
    ``curve("noise_trace")``. ``mean_noise_power``: the mean of ``v`` over the steps (what a constant-noise run
    needs for the same average level).
    """

    model: MLP
    test: PowerLawScores
    mean_noise_power: float = 0.0
    noise_trace: list[tuple[float, float]] = field(default_factory=list)


def build_model(config: PowerLawConfig, data: DigitsData) -> MLP:
    """A fresh MLP of ``config.hidden`` for ``data``'s features and classes (PyTorch's default initialisation)."""
    return MLP(data.num_features, config.hidden, data.num_classes)


class _Batches:
    """Mini-batches of training indices, reshuffled every epoch (a batch larger than the set is the whole set)."""

    def __init__(self, size: int, batch_size: int, generator: torch.Generator) -> None:
        self.size, self.batch_size, self.generator = size, min(batch_size, size), generator

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = torch.randperm(self.size, generator=self.generator)
        full = self.size - self.size % self.batch_size  # drop the last, smaller batch: every step sees b examples
        return iter(order[:full].split(self.batch_size))


def train(
    config: PowerLawConfig | None = None, data: DigitsData | None = None, *, progress: bool = True
) -> PowerLawResult:
    """Train the MLP of ``config`` with (noisy) SGD on ``data.train``; ``None``: the profile's default run, the
    digits. Evaluates the test accuracy (and, with ``track_noise``, the training loss and noise trace) every
    ``eval_every`` steps and after the last."""
    config = PowerLawConfig() if config is None else config
    data = load_data(config) if data is None else data
    generator = seed_everything(config.seed)
    model = build_model(config, data)
    params = list(model.parameters())
    x, y = data.split("train")
    total_power = 0.0

    def step(index: torch.Tensor) -> dict[str, float]:
        for p in params:
            p.grad = None
        loss = F.cross_entropy(model(x[index]), y[index])
        loss.backward()
        nonlocal total_power
        power = config.noise_power(loss.item())
        total_power += power
        noisy_sgd_step(params, config.lr, power, generator)
        return {"loss": loss.item(), "noise_power": power}

    def validate(step_number: int) -> dict[str, float]:
        metrics = {"test_accuracy": evaluate(model, data, "test", sharpness=False).accuracy}
        if config.track_noise:
            point = gradient_noise(model, x, y)
            metrics |= {"train_loss": point.loss, "noise_trace": point.noise}
        return metrics

    history = fit(
        step,
        _Batches(len(x), config.batch_size, generator),
        config.num_steps,
        evaluate=validate,
        eval_every=config.eval_every,
        eval_at_start=config.track_noise,
        desc=config.label,
        log_every=max(1, config.num_steps // 500),
        progress=progress,
    )
    test = evaluate(model, data, "test")
    trace = list(zip(*(history.curve(k)[1] for k in ("train_loss", "noise_trace")))) if config.track_noise else []
    return PowerLawResult(
        config=config,
        model=model,
        history=history,
        metrics={"test_accuracy": test.accuracy, "sharpness": test.sharpness},
        test=test,
        mean_noise_power=total_power / config.num_steps,
        noise_trace=trace,
    )
