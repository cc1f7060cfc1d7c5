"""Training IRN and its same-size super-resolution baseline: config, data, loop, result.

:class:`IRNConfig` holds every size and hyperparameter, picked per profile; the defaults of the ``full``
profile are the official x4 recipe (DIV2K crops of 144, batch 16, Adam 2e-4 halved four times, weight
decay 1e-5, gradient-norm clip 10, lambda_fit 16), with 50 000 steps instead of 500 000. :func:`train` trains
IRN, :func:`train_sr` trains :class:`~reprobook.irn.SRNet` with the same data, steps, batch, optimiser and
schedule (L1 loss), sized to the same parameter count.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, Dataset

from reprobook._validate import check_choice
from reprobook.irn.baselines import SRNet, num_params
from reprobook.irn.model import IRN, SCALES, bicubic_downscale, irn_losses, quantize
from reprobook.metrics.image import psnr
from reprobook.profiles import pick
from reprobook.train import History, device, fit, seed_everything

DEFAULT_LAMBDA_FIT = {2: 4.0, 4: 16.0}
"""The official ``lambda_fit_forw``: 4 at x2, 16 at x4 (``options/train/train_IRN_x*.yml``)."""


def _picked(**values: Any) -> Any:
    return field(default_factory=lambda: pick(**values))


@dataclass
class IRNConfig:
    """Sizes and hyperparameters of one IRN run (and of the SR baseline trained beside it).

    Profile defaults (``smoke`` / ``book`` / ``full``) come from :func:`reprobook.pick` when the config is
    created. ``lr_milestones`` are fractions of ``num_steps`` at which the learning rate is multiplied by
    ``lr_decay`` (the official 500k-step schedule halves at 100k, 200k, 300k, 400k: fractions 0.2-0.8).
    ``lambda_fit=None`` means the official weight for the scale. ``quantize=False`` trains without the
    8-bit rounding of the LR image (an ablation; evaluation always quantises). ``ema > 0`` keeps an
    exponential moving average of the weights with that decay (``p_avg <- ema p_avg + (1 - ema) p`` after every
    step) and returns, validates and snapshots the averaged network; the official recipe has none (``ema=0``),
    but a few hundred steps of IRN's jumpy training end at a random point of a noisy path, and the average smooths
    that out (IRN and the SR baseline alike).
    """

    scale: int = _picked(smoke=2, book=2, full=4)
    blocks_per_level: int = _picked(smoke=2, book=8, full=8)
    growth: int = _picked(smoke=8, book=8, full=32)
    subnet_depth: int = _picked(smoke=3, book=3, full=5)
    clamp: float = 1.0
    crop_size: int = _picked(smoke=32, book=32, full=144)
    batch_size: int = _picked(smoke=4, book=8, full=16)
    num_steps: int = _picked(smoke=20, book=400, full=50_000)
    lr: float = _picked(smoke=2e-3, book=2e-3, full=2e-4)
    lr_milestones: tuple[float, ...] = _picked(smoke=(0.6, 0.8), book=(0.6, 0.8), full=(0.2, 0.4, 0.6, 0.8))
    lr_decay: float = 0.5
    weight_decay: float = 1e-5
    grad_clip: float = 10.0
    lambda_fit: float | None = None
    lambda_rec: float = 1.0
    lambda_distr: float = 1.0
    quantize: bool = True
    ema: float = _picked(smoke=0.98, book=0.98, full=0.0)
    seed: int = 0
    num_workers: int = _picked(smoke=0, book=0, full=8)

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, SCALES)
        for name in ("blocks_per_level", "growth", "subnet_depth", "crop_size", "batch_size", "num_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.crop_size % self.scale:
            raise ValueError(f"crop_size={self.crop_size} must be divisible by scale={self.scale}")
        if not all(0 < m < 1 for m in self.lr_milestones):
            raise ValueError(f"lr_milestones must be fractions of num_steps in (0, 1), got {self.lr_milestones}")
        for name in ("lr", "grad_clip", "clamp"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1) (0 = no weight averaging), got {self.ema!r}")
        if self.lambda_fit is not None and self.lambda_fit < 0:
            raise ValueError(f"lambda_fit must be >= 0 (or None for the official value), got {self.lambda_fit}")

    @property
    def fit_weight(self) -> float:
        """``lambda_fit``, or the official value for the scale when it is None."""
        return DEFAULT_LAMBDA_FIT[self.scale] if self.lambda_fit is None else self.lambda_fit

    def model(self) -> IRN:
        """A fresh IRN of this config's architecture (it starts as the Haar transform)."""
        return IRN(self.scale, self.blocks_per_level, self.growth, self.subnet_depth, self.clamp)


@dataclass
class TrainResult:
    """What :func:`train` and :func:`train_sr` return.

    ``model``: the trained network (the weight average if ``config.ema > 0``); ``history``: per-step losses
    (and ``grad_norm``); ``curve`` and ``lr_curve``: ``(step, HR Y-PSNR)`` and ``(step, LR Y-PSNR against the
    bicubic LR)`` on the validation images (``inf`` LR for fixed downscalers); ``metrics``: final values
    (last-50-step mean losses, last validation PSNRs); ``seconds``: wall time; ``snapshots``: CPU copies of the
    weights at the requested steps (see :meth:`model_at`).
    """

    model: nn.Module
    config: IRNConfig
    history: History
    curve: list[tuple[int, float]]
    lr_curve: list[tuple[int, float]]
    seconds: float
    metrics: dict[str, float]
    snapshots: dict[int, dict[str, Tensor]] = field(default_factory=dict, repr=False)

    @property
    def num_params(self) -> int:
        return num_params(self.model)

    def model_at(self, step: int) -> nn.Module:
        """A copy of the model with the weights it had after ``step`` steps (a step listed in ``snapshots``)."""
        check_choice("step", step, sorted(self.snapshots))
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.snapshots[step])
        return model


class _Crops(Dataset[Tensor]):
    """``num_crops`` random HR crops with flips/rotations; item ``i`` depends only on ``(seed, i)``.

    ``images`` may be a lazy sequence (:class:`~reprobook.data.images.ImageFiles`, e.g. DIV2K): each item
    decodes one image, so the dataset never holds more than a worker's current image.
    """

    def __init__(self, images: Sequence[Tensor], crop_size: int, num_crops: int, seed: int) -> None:
        self.images, self.crop_size, self.num_crops, self.seed = images, crop_size, num_crops, seed

    def __len__(self) -> int:
        return self.num_crops

    def __getitem__(self, index: int) -> Tensor:
        rng = np.random.default_rng([self.seed, index])
        image = self.images[int(rng.integers(len(self.images)))]
        height, width = image.shape[-2:]
        if min(height, width) < self.crop_size:
            raise ValueError(f"crop_size={self.crop_size} does not fit an image of shape {tuple(image.shape)}")
        top, left = int(rng.integers(height - self.crop_size + 1)), int(rng.integers(width - self.crop_size + 1))
        crop = TF.crop(image, top, left, self.crop_size, self.crop_size)
        if rng.integers(2):
            crop = TF.horizontal_flip(crop)
        return torch.rot90(crop, int(rng.integers(4)), dims=(-2, -1)).contiguous()


def _batches(images: Sequence[Tensor], config: IRNConfig) -> Iterable[Tensor]:
    if len(images) == 0:
        raise ValueError("images is empty; expected training images of shape (3, H, W)")
    dataset = _Crops(images, config.crop_size, config.num_steps * config.batch_size, config.seed)
    return DataLoader(
        dataset, batch_size=config.batch_size, num_workers=config.num_workers, persistent_workers=config.num_workers > 0
    )


def _optimizer(model: nn.Module, config: IRNConfig) -> tuple[torch.optim.Optimizer, LRScheduler]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999), weight_decay=config.weight_decay)
    milestones = sorted({round(m * config.num_steps) for m in config.lr_milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=config.lr_decay)
    return optimizer, scheduler


@torch.no_grad()
def validation_psnr(model: nn.Module, images: Sequence[Tensor], seed: int = 0) -> tuple[float, float]:
    """Mean HR and LR Y-PSNR of ``model`` on ``images``, one draw of z: a cheap version of :func:`evaluate`.

    HR: ``model.upscale(model.downscale(x))`` against ``x`` (8-bit output, border = scale). LR: the 8-bit
    ``model.downscale(x)`` against the 8-bit bicubic downscale (``inf`` when they are the same).
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    scale: int = model.scale  # type: ignore[assignment]
    hr, lr = [], []
    for image in images:
        x = image[None].to(dev)
        y = model.downscale(x)  # type: ignore[operator]
        if isinstance(model, IRN):
            x_hat = model.upscale(y, generator=generator)
        else:
            x_hat = model.upscale(y)  # type: ignore[operator]
        x_hat = torch.round(x_hat.clamp(0, 1) * 255) / 255
        hr.append(float(psnr(x_hat, x, crop_border=scale, y_channel=True)))
        lr.append(float(psnr(y, quantize(bicubic_downscale(x, scale)), y_channel=True)))
    model.train(was_training)
    return sum(hr) / len(hr), sum(lr) / len(lr)


def _run(
    model: nn.Module,
    loss_fn: Callable[[Tensor], dict[str, Tensor]],
    images: Sequence[Tensor],
    config: IRNConfig,
    *,
    val_images: Sequence[Tensor] | None,
    eval_every: int | None,
    snapshots: Sequence[int],
    stop_after: int | None,
    desc: str,
    progress: bool,
) -> TrainResult:
    """The loop shared by :func:`train` and :func:`train_sr`: Adam, step schedule, clipping, validation curve."""
    last = config.num_steps if stop_after is None else stop_after
    if not isinstance(last, int) or not 1 <= last <= config.num_steps:
        raise ValueError(f"stop_after must be an integer in [1, num_steps={config.num_steps}], got {stop_after!r}")
    if any(not 1 <= k <= last for k in snapshots):
        raise ValueError(f"snapshots must be steps in [1, {last}], got {list(snapshots)}")
    dev = next(model.parameters()).device
    optimizer, scheduler = _optimizer(model, config)
    averaged = copy.deepcopy(model) if config.ema > 0 else model  # what is validated, snapshotted and returned
    curve: list[tuple[int, float]] = []
    lr_curve: list[tuple[int, float]] = []
    saved: dict[int, dict[str, Tensor]] = {}
    every = eval_every or max(1, config.num_steps // 10)
    step_count = 0

    def validate() -> None:
        if val_images:
            hr, lr = validation_psnr(averaged, val_images, config.seed)
            curve.append((step_count, hr))
            lr_curve.append((step_count, lr))

    validate()

    def step(batch: Tensor) -> dict[str, float]:
        nonlocal step_count
        losses = loss_fn(batch.to(dev, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        if averaged is not model:
            with torch.no_grad():
                for p_avg, p in zip(averaged.parameters(), model.parameters()):
                    p_avg.lerp_(p, 1 - config.ema)
        step_count += 1
        if step_count in snapshots:
            saved[step_count] = {k: v.detach().cpu().clone() for k, v in averaged.state_dict().items()}
        if step_count % every == 0 or step_count == last:
            validate()
        return {**{k: v.item() for k, v in losses.items()}, "grad_norm": float(grad_norm)}

    model.train()
    start = time.perf_counter()
    history = fit(step, _batches(images, config), last, desc=desc, progress=progress)
    seconds = time.perf_counter() - start
    window = min(50, len(history.steps))
    metrics = {key: history.last(key, window) for key in history.metrics}
    if curve:
        metrics["val_psnr"], metrics["val_lr_psnr"] = curve[-1][1], lr_curve[-1][1]
    return TrainResult(averaged, config, history, curve, lr_curve, seconds, metrics, saved)


def train(
    config: IRNConfig | None = None,
    images: Sequence[Tensor] | None = None,
    *,
    val_images: Sequence[Tensor] | None = None,
    eval_every: int | None = None,
    snapshots: Sequence[int] = (),
    stop_after: int | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> TrainResult:
    """Train an IRN on random crops of ``images`` (default: the book's training photos) with the three losses.

    Each step: HR crops ``x`` -> ``f(x) = [y, z]`` -> guide, distribution and reconstruction losses of
    :func:`~reprobook.irn.irn_losses` (reconstruction from ``Q(y)`` and a fresh ``z~``) -> backward ->
    gradient-norm clip -> Adam. ``val_images`` (small ``(3, H, W)`` images, sides divisible by the scale)
    give the ``curve`` of HR PSNR every ``eval_every`` steps (default: 10 points).

    ``snapshots`` lists steps at which to keep a copy of the weights (:meth:`TrainResult.model_at`);
    ``stop_after`` ends training early, with the learning-rate schedule of the full ``config.num_steps``.
    Runs are deterministic for a given seed and thread count, so a run with ``stop_after=k`` and a switch
    flipped is the full run's ablation at step ``k``: compare it with ``full_run.model_at(k)``.
    """
    config = config or IRNConfig()
    seed_everything(config.seed)
    if images is None:
        from reprobook.data.images import TRAIN_IMAGES, load_images

        images = load_images(TRAIN_IMAGES)
    model = config.model().to(device())

    def loss_fn(x: Tensor) -> dict[str, Tensor]:
        return irn_losses(
            model,
            x,
            lambda_fit=config.fit_weight,
            lambda_rec=config.lambda_rec,
            lambda_distr=config.lambda_distr,
            quantize_lr=config.quantize,
        )

    return _run(
        model,
        loss_fn,
        images,
        config,
        val_images=val_images,
        eval_every=eval_every,
        snapshots=snapshots,
        stop_after=stop_after,
        desc=desc or f"IRN x{config.scale}",
        progress=progress,
    )


def train_sr(
    config: IRNConfig | None = None,
    images: Sequence[Tensor] | None = None,
    *,
    num_params: int | None = None,
    val_images: Sequence[Tensor] | None = None,
    eval_every: int | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> TrainResult:
    """Train the bicubic-down + learned-up baseline with IRN's budget: same crops, steps, batch, optimiser.

    The :class:`~reprobook.irn.SRNet` is sized by :meth:`SRNet.matching` to ``num_params`` (default: the
    parameter count of ``config.model()``, the IRN it is compared with). Loss: L1 between the upscaled
    8-bit bicubic LR and the HR crop (sum over pixels, mean over the batch, like IRN's losses).
    """
    config = config or IRNConfig()
    seed_everything(config.seed)
    if images is None:
        from reprobook.data.images import TRAIN_IMAGES, load_images

        images = load_images(TRAIN_IMAGES)
    target = num_params if num_params is not None else sum(p.numel() for p in config.model().parameters())
    model = SRNet.matching(target, config.scale).to(device())

    def loss_fn(x: Tensor) -> dict[str, Tensor]:
        y = quantize(bicubic_downscale(x, config.scale))
        return {"loss": (model(y) - x).abs().sum() / x.shape[0]}

    return _run(
        model,
        loss_fn,
        images,
        config,
        val_images=val_images,
        eval_every=eval_every,
        snapshots=(),
        stop_after=None,
        desc=desc or f"SR baseline x{config.scale}",
        progress=progress,
    )
