"""Training IRN and its same-size super-resolution baseline: one config, one loop, one result.

:class:`IRNConfig` describes one run: which system (``model="irn"`` or the SR CNN baseline ``model="sr"``), the
data, every size and the training recipe, picked per profile. The defaults of the ``full`` profile are the official
x4 recipe (DIV2K crops of 144, batch 16, Adam 2e-4 halved four times, weight decay 1e-5, gradient-norm clip 10,
lambda_fit 16), with 50 000 steps instead of 500 000. :func:`train` trains either system through
:func:`reprobook.train.fit` with the same crops, steps, batch, optimiser and schedule; only the loss differs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader

from reprobook._validate import check_choice, check_float, check_fractions, check_int
from reprobook.irn.baselines import SRNet
from reprobook.irn.data import IRNData, TrainingCrops, load_data
from reprobook.irn.evaluate import validation_psnr
from reprobook.irn.model import IRN, SCALES, bicubic_downscale, irn_losses, quantize
from reprobook.nn import count_parameters
from reprobook.nn.invertible import OFFICIAL_INIT_SCALE
from reprobook.profiles import pick_default
from reprobook.train import RunResult, device, fit, seed_everything, step_decay

DEFAULT_LAMBDA_FIT = {2: 4.0, 4: 16.0}
"""The official ``lambda_fit_forw``: 4 at x2, 16 at x4 (``options/train/train_IRN_x*.yml``)."""

MODELS = ("irn", "sr")
DATASETS = ("photos", "div2k")
TRAIN_IMAGE_SETS = ("photos", "all")
LABELS = {"irn": "IRN", "sr": "SR CNN"}


@dataclass
class IRNConfig:
    """One run: IRN (``model="irn"``) or the same-size SR CNN baseline (``model="sr"``), its data and its recipe.

    Profile defaults (``smoke`` / ``book`` / ``full``) are picked when the config is created. ``dataset``:
    ``"photos"`` (the scikit-image photos, offline) or ``"div2k"`` (DIV2K train, Set5 test; download opt-in);
    ``train_images`` (``dataset="photos"`` only): ``"photos"`` trains on the four training photos, ``"all"`` adds
    the other packaged images (:data:`~reprobook.irn.data.EXTRA_IMAGES`; the test photos stay held out);
    ``val_side``: the side of the validation centre crops; ``eval_every``: steps between two points of the
    validation curve (``None``: 10 points per run; ``0``: no validation curve). ``lr_milestones`` are fractions
    of ``num_steps`` at which the learning rate is multiplied by ``lr_decay`` (the official 500k-step schedule
    halves at 100k, 200k, 300k, 400k: fractions 0.2-0.8). ``lambda_fit=None`` means the official weight for the
    scale. ``init_scale`` multiplies the Xavier-normal start of the subnets' hidden convs, whose last convs start at
    zero (the official 0.1, ``full``, is made for 500 000 steps); ``None`` (the short profiles) keeps PyTorch's default
    initialisation of every conv, which learns faster in a budget of a few thousand steps (the IRN chapter's
    ablation trains the official start to the same step). ``colour_augment`` shuffles the RGB channels of each
    training crop and scales its brightness (:class:`~reprobook.irn.data.TrainingCrops`): the short profiles train on
    four photos, whose colours and brightness do not cover the test photos'; ``full`` trains on DIV2K without it, as
    the official code does. ``quantize=False`` trains IRN without the 8-bit rounding of the LR image (an ablation;
    evaluation always quantises). ``ema > 0`` keeps an exponential moving average of the weights with that decay
    (``p_avg <- ema p_avg + (1 - ema) p`` after every step) and returns, validates and snapshots the averaged network;
    the official recipe has none (``ema=0``), but a short run of IRN's jumpy training ends at a random point of a
    noisy path, and the average smooths that out (IRN and the SR baseline alike).
    """

    model: Literal["irn", "sr"] = "irn"
    dataset: Literal["photos", "div2k"] = pick_default(smoke="photos", book="photos", full="div2k")
    train_images: Literal["photos", "all"] = "all"
    scale: int = pick_default(smoke=2, book=2, full=4)
    blocks_per_level: int = pick_default(smoke=2, book=6, full=8)
    growth: int = pick_default(smoke=8, book=16, full=32)
    subnet_depth: int = pick_default(smoke=3, book=3, full=5)
    clamp: float = 1.0
    init_scale: float | None = pick_default(smoke=None, book=None, full=OFFICIAL_INIT_SCALE)
    crop_size: int = pick_default(smoke=32, book=32, full=144)
    colour_augment: bool = pick_default(smoke=True, book=True, full=False)
    batch_size: int = pick_default(smoke=4, book=16, full=16)
    num_steps: int = pick_default(smoke=20, book=3200, full=50_000)
    lr: float = pick_default(smoke=1e-3, book=1e-3, full=2e-4)
    lr_milestones: tuple[float, ...] = pick_default(smoke=(0.7, 0.9), book=(0.7, 0.9), full=(0.2, 0.4, 0.6, 0.8))
    lr_decay: float = 0.5
    weight_decay: float = 1e-5
    grad_clip: float = 10.0
    lambda_fit: float | None = None
    lambda_rec: float = 1.0
    lambda_distr: float = 1.0
    quantize: bool = True
    ema: float = pick_default(smoke=0.98, book=0.99, full=0.0)
    val_side: int = pick_default(smoke=64, book=128, full=256)
    eval_every: int | None = None
    seed: int = 0
    num_workers: int = pick_default(smoke=0, book=0, full=8)

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODELS)
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("train_images", self.train_images, TRAIN_IMAGE_SETS)
        check_choice("scale", self.scale, SCALES)
        for name in ("blocks_per_level", "growth", "subnet_depth", "crop_size", "batch_size", "num_steps"):
            check_int(name, getattr(self, name), 1)
        if self.crop_size % self.scale:
            raise ValueError(f"crop_size={self.crop_size} must be divisible by scale={self.scale}")
        check_float("clamp", self.clamp, 0, open_low=True)
        if self.init_scale is not None:
            check_float("init_scale", self.init_scale, 0, open_low=True)
        check_float("lr", self.lr, 0, open_low=True)
        check_fractions("lr_milestones", self.lr_milestones)
        check_float("lr_decay", self.lr_decay, 0, 1, open_low=True)
        check_float("weight_decay", self.weight_decay, 0)
        check_float("grad_clip", self.grad_clip, 0, open_low=True)
        if self.lambda_fit is not None:
            check_float("lambda_fit", self.lambda_fit, 0)
        check_float("lambda_rec", self.lambda_rec, 0)
        check_float("lambda_distr", self.lambda_distr, 0)
        for name in ("quantize", "colour_augment"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if check_float("ema", self.ema, 0, 1) == 1:
            raise ValueError(f"ema={self.ema!r} is out of range; expected 0 <= ema < 1 (0 = no weight averaging)")
        check_int("val_side", self.val_side, self.scale)
        if self.eval_every is not None:
            check_int("eval_every", self.eval_every, 0)
        check_int("seed", self.seed)
        check_int("num_workers", self.num_workers)

    @property
    def label(self) -> str:
        """The system's name in tables: ``"IRN x2"``, ``"SR CNN x2"``."""
        return f"{LABELS[self.model]} x{self.scale}"

    @property
    def fit_weight(self) -> float:
        """``lambda_fit``, or the official value for the scale when it is None."""
        return DEFAULT_LAMBDA_FIT[self.scale] if self.lambda_fit is None else self.lambda_fit

    @property
    def validation_period(self) -> int:
        """Steps between two validations: ``eval_every``, or a tenth of ``num_steps`` when it is None (0: never)."""
        return max(1, self.num_steps // 10) if self.eval_every is None else self.eval_every


@dataclass(kw_only=True)
class IRNResult(RunResult):
    """What :func:`train` returns: :class:`~reprobook.train.RunResult` plus weight snapshots.

    ``model``: the trained network (the weight average if ``config.ema > 0``); ``history``: per-step losses
    (and ``grad_norm``) and the validation curve, ``history.curve("val_psnr")`` (HR Y-PSNR) and
    ``history.curve("val_lr_psnr")`` (LR Y-PSNR against the bicubic LR, ``inf`` for the fixed downscaler of the SR
    CNN); ``metrics``: last-50-step mean losses and the last validation PSNRs; ``snapshots``: CPU copies of the
    weights at the requested steps (see :meth:`model_at`).
    """

    snapshots: dict[int, dict[str, Tensor]] = field(default_factory=dict, repr=False)

    def model_at(self, step: int) -> nn.Module:
        """A copy of the model with the weights it had after ``step`` steps (a step listed in ``snapshots``)."""
        check_choice("step", step, sorted(self.snapshots))
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.snapshots[step])
        return model


def build_model(config: IRNConfig, data: IRNData | None = None) -> IRN | SRNet:
    """A fresh network of the system ``config`` names (both are fully convolutional: ``data`` does not size them).

    ``model="irn"``: the :class:`~reprobook.irn.IRN` of the config's architecture (it starts as the Haar
    transform). ``model="sr"``: the :class:`~reprobook.irn.SRNet` sized by :meth:`SRNet.matching` to the
    parameter count of that IRN (it starts as the bicubic baseline). The IRN is built in both cases, so the SR
    CNN's initial weights come from the same point of the seeded random stream.
    """
    irn = IRN(
        config.scale, config.blocks_per_level, config.growth, config.subnet_depth, config.clamp, config.init_scale
    )
    if config.model == "irn":
        return irn
    return SRNet.matching(count_parameters(irn), config.scale)


def _losses(model: nn.Module, x: Tensor, config: IRNConfig) -> dict[str, Tensor]:
    """The training loss on an HR batch ``x: (B, 3, H, W)``, under ``"loss"``.

    IRN: the three weighted terms of :func:`~reprobook.irn.irn_losses` and their sum. SR CNN: L1 between the
    upscaled 8-bit bicubic LR and ``x`` (sum over pixels, mean over the batch, like IRN's losses).
    """
    if isinstance(model, IRN):
        return irn_losses(
            model,
            x,
            lambda_fit=config.fit_weight,
            lambda_rec=config.lambda_rec,
            lambda_distr=config.lambda_distr,
            quantize_lr=config.quantize,
        )
    y = quantize(bicubic_downscale(x, config.scale))
    return {"loss": (model(y) - x).abs().sum() / x.shape[0]}


def _batches(images: Sequence[Tensor], config: IRNConfig) -> Iterable[Tensor]:
    num_crops = config.num_steps * config.batch_size
    dataset = TrainingCrops(images, config.crop_size, num_crops, config.seed, colour=config.colour_augment)
    return DataLoader(
        dataset, batch_size=config.batch_size, num_workers=config.num_workers, persistent_workers=config.num_workers > 0
    )


def _optimizer(model: nn.Module, config: IRNConfig) -> tuple[torch.optim.Optimizer, LRScheduler]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999), weight_decay=config.weight_decay)
    return optimizer, step_decay(optimizer, config.num_steps, config.lr_milestones, config.lr_decay)


def train(
    config: IRNConfig | None = None,
    data: IRNData | None = None,
    *,
    progress: bool = True,
    snapshots: Sequence[int] = (),
    stop_after: int | None = None,
) -> IRNResult:
    """Train the system ``config`` names on random crops of ``data.train`` (default: :func:`load_data`).

    Each IRN step: HR crops ``x`` -> ``f(x) = [y, z]`` -> guide, distribution and reconstruction losses of
    :func:`~reprobook.irn.irn_losses` (reconstruction from ``Q(y)`` and a fresh ``z~``) -> backward ->
    gradient-norm clip -> Adam. The SR CNN takes the same steps with its L1 loss. Every
    ``config.validation_period`` steps (and before the first) :func:`~reprobook.irn.validation_psnr` of the
    returned (weight-averaged) network on ``data.valid`` adds a point to the curves ``val_psnr`` and
    ``val_lr_psnr`` of ``result.history``.

    ``snapshots`` lists steps at which to keep a copy of the weights (:meth:`IRNResult.model_at`);
    ``stop_after`` ends training early, with the learning-rate schedule of the full ``config.num_steps``.
    Runs are deterministic for a given seed and thread count, so a run with ``stop_after=k`` and a switch
    flipped is the full run's ablation at step ``k``: compare it with ``full_run.model_at(k)``.
    """
    config = config or IRNConfig()
    data = data if data is not None else load_data(config)
    last = config.num_steps if stop_after is None else stop_after
    if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= config.num_steps:
        raise ValueError(f"stop_after must be an integer in [1, num_steps={config.num_steps}], got {stop_after!r}")
    if any(not 1 <= k <= last for k in snapshots):
        raise ValueError(f"snapshots must be steps in [1, {last}], got {list(snapshots)}")
    seed_everything(config.seed)
    model = build_model(config, data).to(device())
    dev = next(model.parameters()).device
    optimizer, scheduler = _optimizer(model, config)
    averaged = copy.deepcopy(model) if config.ema > 0 else model  # what is validated, snapshotted and returned
    saved: dict[int, dict[str, Tensor]] = {}
    step_count = 0

    def step(batch: Tensor) -> dict[str, float]:
        nonlocal step_count
        losses = _losses(model, batch.to(dev, non_blocking=True), config)
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
        return {**{k: v.item() for k, v in losses.items()}, "grad_norm": float(grad_norm)}

    def validate(_: int) -> dict[str, float]:
        hr, lr = validation_psnr(averaged, data.valid, config.seed)
        return {"val_psnr": hr, "val_lr_psnr": lr}

    period = config.validation_period
    model.train()
    history = fit(
        step,
        _batches(data.train, config),
        last,
        evaluate=validate if period else None,
        eval_every=period or None,
        eval_at_start=True,
        desc=config.label,
        progress=progress,
    )
    window = min(50, len(history.steps))
    metrics = {key: history.last(key, window) for key in history.metrics}
    if history.evaluations:
        metrics.update(history.evaluations[-1].metrics)
    return IRNResult(config=config, model=averaged, history=history, metrics=metrics, snapshots=saved)
