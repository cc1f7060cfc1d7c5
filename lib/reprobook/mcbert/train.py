"""Pre-training one objective on the toy world, with its compute counted.

:class:`MCBERTConfig` describes one pre-training run (the objective, the sizes, the recipe). :func:`step_flops`
counts the multiply-adds of every component of one step (forward and backward where gradients flow, forward only
for the controller's sampling softmax), so :func:`~reprobook.mcbert.baselines.equal_compute` can give every
objective the same FLOPs. :func:`train` pre-trains through :func:`reprobook.train.fit`, keeps snapshots of the
model at fractions of the run (for efficiency curves and the candidates early and late), and records the
pre-training task accuracies on held-out corpus lines.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from reprobook._validate import check_bool, check_choice, check_float, check_int
from reprobook.mcbert.data import MCBERTData, load_data
from reprobook.mcbert.model import OBJECTIVES, Pretrainer
from reprobook.nn import eval_mode
from reprobook.profiles import pick_default
from reprobook.train import History, RunResult, fit, seed_everything

LABELS = {"mlm": "BERT-MLM", "electra": "ELECTRA", "mcbert": "MC-BERT"}


@dataclass
class MCBERTConfig:
    """One pre-training run. ``objective``: ``"mcbert"``, ``"electra"`` or ``"mlm"``; ``num_steps``: its updates
    (``equal_compute`` sets them from a FLOPs budget); ``divider``: the controller/generator is ``d / divider``
    wide; ``num_candidates``: ``K`` (slot 0 is ``<neither>``); ``lam``: the weight of the discriminative loss;
    ``freeze_small``: the generator / controller keeps its random initialisation (an ablation: no curriculum).

    Book scale was set by measurement on SEM, whose test nouns only the corpus describes: at 1,500 BERT-MLM steps
    of compute and ``lr`` 1e-3 no objective carried their classes over (SEM at its floor); 3,000 steps at 2e-3 do,
    in under three minutes for the three objectives on two cores."""

    objective: str = "mcbert"
    d_model: int = pick_default(smoke=32, book=64, full=128)
    num_heads: int = 4
    layers: int = 2
    ffn_dim: int = pick_default(smoke=64, book=128, full=256)
    divider: int = 2
    num_candidates: int = 10
    lam: float = 50.0
    mask_rate: float = 0.15
    dropout: float = 0.1
    lr: float = 2e-3
    warmup: int = pick_default(smoke=5, book=100, full=1_000)
    batch_size: int = pick_default(smoke=32, book=64, full=128)
    num_steps: int = pick_default(smoke=20, book=3_000, full=20_000)
    eval_every: int = pick_default(smoke=10, book=100, full=1_000)
    snapshots: tuple[float, ...] = (0.05, 0.5, 1.0)
    freeze_small: bool = False
    seed: int = 0
    corpus_size: int = pick_default(smoke=2_000, book=20_000, full=60_000)
    task_size: int = pick_default(smoke=300, book=1_500, full=2_000)
    test_size: int = pick_default(smoke=300, book=1_000, full=1_000)
    fact_rate: float = 0.15
    data_seed: int = 0
    max_len: int = 18

    def __post_init__(self) -> None:
        check_choice("objective", self.objective, OBJECTIVES)
        for name in ("d_model", "num_heads", "layers", "ffn_dim", "divider", "warmup", "batch_size", "num_steps"):
            check_int(name, getattr(self, name), 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        check_int("num_candidates", self.num_candidates, 2)
        check_float("lam", self.lam, 0.0, open_low=True)
        check_float("mask_rate", self.mask_rate, 0.0, 1.0, open_low=True, open_high=True)
        check_float("dropout", self.dropout, 0.0, 1.0, open_high=True)
        check_float("lr", self.lr, 0.0, open_low=True)
        check_int("eval_every", self.eval_every, 1)
        for f in self.snapshots:
            check_float("snapshots", f, 0.0, 1.0, open_low=True)
        check_bool("freeze_small", self.freeze_small)
        check_int("seed", self.seed, 0)
        check_int("corpus_size", self.corpus_size, 1)
        check_int("task_size", self.task_size, 6)
        check_int("test_size", self.test_size, 6)
        check_float("fact_rate", self.fact_rate, 0.0, 1.0)
        check_int("data_seed", self.data_seed, 0)
        check_int("max_len", self.max_len, 16)

    @property
    def label(self) -> str:
        return LABELS[self.objective]


def build_model(config: MCBERTConfig, data: MCBERTData) -> Pretrainer:
    """A fresh :class:`~reprobook.mcbert.model.Pretrainer` of ``config.objective`` for ``data``'s vocabulary."""
    return Pretrainer(
        config.objective, len(data.vocab), config.d_model, config.num_heads, config.layers, config.ffn_dim,
        data.max_len, config.divider, config.num_candidates, config.lam, config.mask_rate, config.dropout,
    )  # fmt: skip


def encoder_flops(d: int, ffn: int, layers: int, seq_len: int) -> float:
    """Forward multiply-add FLOPs (2 per multiply-add) of the encoder on one sequence of ``seq_len`` tokens:
    Q, K, V, O projections ``4 d^2``, scores and weighted sum ``2 T d``, FFN ``2 d f`` per token and layer."""
    return 2.0 * layers * seq_len * (4 * d * d + 2 * seq_len * d + 2 * d * ffn)


SOFTMAX_FLOPS = 5
"""FLOPs per logit of a softmax followed by sampling (max, subtract, exp, sum, divide)."""


def step_flops(config: MCBERTConfig, vocab: int, seq_len: int | None = None) -> dict[str, float]:
    """FLOPs of one training step by component (forward x 3 where there is a backward, x 1 where not).

    Per sequence of ``seq_len`` tokens (default ``max_len``), ``m = mask_rate * seq_len`` masked, times the batch:
    ``D`` body (all), output heads (MLM: masked tokens; RTD and multi-choice: every token), the small network's
    body and table projection, its vocabulary head with gradients at the masked tokens, and (MC-BERT) its
    forward-only full-vocabulary logits and softmax at every token, from which the ``K`` candidates are drawn."""
    t = config.max_len if seq_len is None else seq_len
    d, f, n, b = config.d_model, config.ffn_dim, config.layers, config.batch_size
    m = config.mask_rate * t
    parts: dict[str, float] = {"D encoder": 3 * encoder_flops(d, f, n, t)}
    if config.objective == "mlm":
        parts["D MLM head"] = 3 * m * (2 * d * d + 2 * d * vocab)
    elif config.objective == "electra":
        parts["D RTD head"] = 3 * t * (2 * d * d + 2 * d)
    else:
        parts["D candidate head"] = 3 * t * (2 * d * d + 2 * d * config.num_candidates)
    if config.objective != "mlm":
        dc = d // config.divider
        parts["small encoder"] = 3 * encoder_flops(dc, f // config.divider, n, t)
        parts["small table E P"] = 3 * 2 * vocab * d * dc / b  # once per batch
        parts["small vocab head (masked)"] = 3 * m * (2 * dc * dc + 2 * dc * vocab) + SOFTMAX_FLOPS * m * vocab
        if config.objective == "mcbert":
            parts["controller softmax (all tokens)"] = t * (2 * dc * vocab + SOFTMAX_FLOPS * vocab)
    return {k: v * b for k, v in parts.items()}


@dataclass(kw_only=True)
class MCBERTResult(RunResult):
    """A pre-trained :class:`~reprobook.mcbert.model.Pretrainer`, its :class:`~reprobook.train.History`
    (``"loss"`` per step; the evaluations ``task_acc``, ``task_acc_replaced``, ``original_share``, ``gen_acc``,
    ``mlm_acc`` on the held-out corpus lines), ``snapshots`` (``{fraction: state_dict}``) and ``metrics``
    (``flops_per_step``, ``flops``, ``sec_per_step`` and the last evaluation)."""

    config: MCBERTConfig
    model: Pretrainer
    snapshots: dict[float, dict[str, torch.Tensor]] = field(default_factory=dict)


@torch.no_grad()
def pretraining_metrics(model: Pretrainer, ids: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """The objective's loss and task accuracies on ``ids`` in eval mode, with a fixed masking seed."""
    with eval_mode(model):
        out = model.losses(ids, torch.Generator().manual_seed(seed))
    return {k: float(v) for k, v in out.items()}


def train(config: MCBERTConfig | None = None, data: MCBERTData | None = None, *, progress: bool = True) -> MCBERTResult:
    """Pre-train ``config`` (default: the profile's MC-BERT run) on ``data`` (loaded if None)."""
    config = MCBERTConfig() if config is None else config
    data = load_data(config) if data is None else data
    generator = seed_everything(config.seed)
    model = build_model(config, data)
    frozen = {"proj", "small", "small_head"} if config.freeze_small else set()
    params = [p for name, p in model.named_parameters() if name.split(".")[0] not in frozen]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    total = config.num_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / config.warmup, max(0.0, (total - s) / max(1, total - config.warmup)))
    )
    keep = {max(1, round(f * total)): f for f in config.snapshots}
    snapshots: dict[float, dict[str, torch.Tensor]] = {}
    history = History()

    def step(batch: torch.Tensor) -> dict[str, float]:
        model.train()
        out = model.losses(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if history.num_steps + 1 in keep:
            snapshots[keep[history.num_steps + 1]] = copy.deepcopy(model.state_dict())
        return {"loss": float(out["loss"].detach())}

    def evaluate(_: int) -> dict[str, float]:
        return pretraining_metrics(model, data.valid)

    fit(
        step, data.batches(config.batch_size, generator), total, evaluate=evaluate,
        eval_every=min(config.eval_every, total), history=history, desc=config.label, progress=progress,
    )  # fmt: skip
    flops = sum(step_flops(config, len(data.vocab)).values())
    metrics = {
        "flops_per_step": flops,
        "flops": flops * total,
        "sec_per_step": history.seconds / history.num_steps,
        **history.evaluations[-1].metrics,
    }
    return MCBERTResult(config=config, model=model, history=history, metrics=metrics, snapshots=snapshots)


def restore(result: MCBERTResult, fraction: float) -> Pretrainer:
    """A copy of the pre-trained model as it was at ``fraction`` of its run (one of ``config.snapshots``)."""
    check_choice("fraction", fraction, sorted(result.snapshots))
    model = copy.deepcopy(result.model)
    model.load_state_dict(result.snapshots[fraction])
    return model
