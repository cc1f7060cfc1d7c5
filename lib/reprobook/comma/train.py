"""One run of CoMMA, of the plain NAR model or of the AR baseline on one task, through :func:`reprobook.train.fit`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from reprobook._validate import check_choice, check_float, check_int
from reprobook.comma.baselines import ARModel, ar_loss
from reprobook.comma.data import STACK, TASKS, Batch, CoMMAData, batches, chunks, load_data
from reprobook.comma.model import CoMMA, Sizes, check_sizes, comma_loss, mask_targets
from reprobook.nn import eval_mode
from reprobook.profiles import pick_default
from reprobook.train import RunResult, device, fit, seed_everything

MODELS = ("comma", "nar", "ar")


@dataclass
class CoMMAConfig:
    """One run. ``task``: ``"nmt"``, ``"asr"`` or ``"tts"``. ``model``: ``"comma"`` (masking rate ``p ~ U[0, 1]``
    per sentence), ``"nar"`` (the same network, every position masked: a plain non-autoregressive model) or
    ``"ar"`` (the autoregressive baseline). ``align_weight``: weight of the alignment loss (CoMMA/NAR only).
    ``stack``: speech frames stacked (ASR source) or averaged (TTS target) into one position: it sets the speech
    side's length, and so the length normalisation of the density ratio."""

    task: str = "nmt"
    model: str = "comma"
    align_weight: float = 0.0
    num_sentences: int = pick_default(smoke=300, book=3000, full=20_000)
    num_utterances: int = pick_default(smoke=40, book=600, full=5_000)
    stack: int = STACK
    d_model: int = pick_default(smoke=32, book=64, full=256)
    num_heads: int = 4
    layers: int = pick_default(smoke=1, book=2, full=6)
    d_ff: int = pick_default(smoke=64, book=256, full=1024)
    dropout: float = 0.1
    batch_size: int = pick_default(smoke=16, book=32, full=64)
    num_steps: int = pick_default(smoke=25, book=800, full=30_000)
    warmup: int = pick_default(smoke=5, book=100, full=4_000)
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("task", self.task, TASKS)
        check_choice("model", self.model, MODELS)
        check_float("align_weight", self.align_weight, 0, math.inf)
        if self.align_weight > 0 and self.model == "ar":
            raise ValueError("align_weight applies to the mix-attention models, not model='ar'")
        check_int("num_sentences", self.num_sentences, 30)
        check_int("num_utterances", self.num_utterances, 10)
        check_int("stack", self.stack, 1)
        for name in ("d_model", "num_heads", "layers", "d_ff", "batch_size", "num_steps", "warmup"):
            check_int(name, getattr(self, name), 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        check_float("dropout", self.dropout, 0, 1, open_high=True)
        check_float("lr", self.lr, 0, math.inf, open_low=True)
        check_int("seed", self.seed, 0)

    @property
    def label(self) -> str:
        name = {"comma": "CoMMA", "nar": "NAR", "ar": "AR"}[self.model]
        stacked = f" x{self.stack}" if self.stack != STACK and self.task != "nmt" else ""
        return f"{name} {self.task.upper()}{stacked}" + (" + align" if self.align_weight > 0 else "")


def sizes(config: CoMMAConfig, data: CoMMAData) -> Sizes:
    s = Sizes(
        src_vocab=len(data.src_vocab) if data.src_vocab is not None else 0,
        tgt_vocab=len(data.tgt_vocab) if data.tgt_vocab is not None else 0,
        src_dim=data.src_dim,
        tgt_dim=data.tgt_dim,
        d_model=config.d_model,
        num_heads=config.num_heads,
        encoder_layers=config.layers,
        decoder_layers=config.layers,
        d_ff=config.d_ff,
        dropout=config.dropout,
    )
    check_sizes(s)
    return s


def build_model(config: CoMMAConfig, data: CoMMAData) -> CoMMA | ARModel:
    """A fresh CoMMA (``model="comma"`` or ``"nar"``) or :class:`ARModel` sized for ``data``, on the CPU."""
    if data.task != config.task:
        raise ValueError(f"config.task={config.task!r} but the data is the {data.task!r} task")
    s = sizes(config, data)
    return ARModel(s) if config.model == "ar" else CoMMA(s, data.mask_id if data.tokens_out else 0)


@dataclass(kw_only=True)
class CoMMAResult(RunResult):
    """The run's :class:`~reprobook.train.RunResult`; ``metrics["valid_loss"]`` is the last validation loss."""


def run_loss(
    model: CoMMA | ARModel, config: CoMMAConfig, batch: Batch, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """The training loss of one batch (on the model's device) for the configured system (masking drawn from the CPU
    ``generator``)."""
    if isinstance(model, ARModel):
        return ar_loss(model, batch)
    b = batch.tgt_len.shape[0]
    p = torch.ones(b) if config.model == "nar" else torch.rand(b, generator=generator)
    masked = mask_targets(batch.tgt_len, p, generator)
    return comma_loss(model, batch, masked, align_weight=config.align_weight)


def train(config: CoMMAConfig | None = None, data: CoMMAData | None = None, *, progress: bool = True) -> CoMMAResult:
    """Seed, build, train with Adam (linear warm-up, then inverse square root decay) on
    :func:`reprobook.train.device` (CUDA when present) and return the result."""
    config = config or CoMMAConfig()
    data = data if data is not None else load_data(config)
    generator = seed_everything(config.seed)
    dev = device()
    model = build_model(config, data).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98))
    warm = config.warmup
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min((i + 1) / warm, math.sqrt(warm / (i + 1))))

    def step(batch: Batch) -> dict[str, float]:
        model.train()
        losses = run_loss(model, config, batch.to(dev), generator)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    def validate(_: int) -> dict[str, float]:
        fixed = torch.Generator().manual_seed(1234)
        with eval_mode(model), torch.no_grad():
            values = [float(run_loss(model, config, b.to(dev), fixed)["pred"]) for b in chunks(data.valid, 64)]
        return {"valid_loss": sum(values) / len(values)}

    history = fit(
        step,
        batches(data.train, config.batch_size, config.seed),
        config.num_steps,
        evaluate=validate,
        eval_every=max(1, config.num_steps // 4),
        desc=config.label,
        progress=progress,
        log_every=5,
    )
    return CoMMAResult(
        config=config,
        model=model,
        history=history,
        metrics={"valid_loss": history.evaluations[-1].metrics["valid_loss"]},
    )
