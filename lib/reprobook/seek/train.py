"""Training SEEK and its baselines as in the official code: logistic loss, negative sampling, Adagrad.

For each positive triple ``(h, r, t)`` the sampler draws ``n = num_negatives`` random tails, ``n``
random heads and (with ``corrupt_relations``) ``n`` random relations, uniformly and *unfiltered*
(a corruption may be a true triple), as ``main.cpp`` does. Every triple, positive or corrupted,
gets the logistic loss of the paper::

    loss = log(1 + exp(-l * f(h, r, t))),    l = +1 for a positive, -1 for a corruption

plus the official L2 term: every embedding that takes part in a scored triple is pulled towards 0
by ``(lambda / d) * e`` (the gradient of ``lambda / (2 d) * ||e||^2``, once per triple it appears in).
``loss="1-n"`` replaces the samples by *every* other entity (and relation): 1-N scoring, one
matrix product per slot.

The optimiser is Adagrad with the accumulator starting at 1e-6, as in the official code (whose
learning rate is 0.1; :class:`SEEKConfig` gives the book's choices). The official code updates one
triple at a time on many threads; here a mini-batch of ``batch_size`` positives sums its losses,
which Adagrad's per-coordinate normalisation makes nearly scale-free. The best checkpoint on
validation MRR is kept when ``eval_every > 0``, as the official code selects its model.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from reprobook._validate import check_choice
from reprobook.data.kg import KnowledgeGraph
from reprobook.profiles import pick
from reprobook.seek.evaluate import evaluate
from reprobook.seek.model import SEEK, KGEModel, TransE, check_triples
from reprobook.seek.scoring import Side, check_segments
from reprobook.train import History, fit, seed_everything
from reprobook.train import device as default_device

MODELS = ("seek", "transe")
LOSSES = ("negative_sampling", "1-n")


@dataclass
class SEEKConfig:
    """Everything that defines one training run; sizes follow the active profile (:func:`reprobook.pick`).

    The defaults are the book's settings; the comments give the official ones where they differ.
    ``dim`` is the number of real parameters per entity and per relation for every model, so runs with
    different ``num_segments`` have the same parameter count. ``num_segments=1`` is DistMult and
    ``num_segments=2`` ComplEx. ``model="transe"`` ignores ``num_segments`` and uses ``margin``.
    """

    model: str = "seek"
    dim: int = 64
    num_segments: int = 4
    num_epochs: int = field(default_factory=lambda: pick(smoke=2, book=40, full=200))
    batch_size: int = 512
    lr: float = 0.3  # official: 0.1 with per-triple updates for 100+ epochs
    num_negatives: int = 16  # per slot; official: 100 to 1000
    corrupt_relations: bool = True
    l2: float = 1e-3  # lambda; official FB15K and YAGO37 value
    loss: str = "negative_sampling"
    init_scale: float = 0.01
    margin: float = 2.0
    seed: int = 0
    # Evaluate on valid every so many epochs and keep the best model (as the official code selects
    # its checkpoint); 0: no selection, the last model is kept.
    eval_every: int = field(default_factory=lambda: pick(smoke=0, book=10, full=20))

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODELS)
        check_choice("loss", self.loss, LOSSES)
        if self.model == "seek":
            check_segments(self.dim, self.num_segments)
        for name in ("num_epochs", "batch_size", "dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range; expected >= 1")
        if self.num_negatives < 0 or self.eval_every < 0 or self.lr <= 0 or self.l2 < 0:
            raise ValueError("num_negatives, eval_every and l2 must be >= 0 and lr > 0")

    @property
    def label(self) -> str:
        """``"SEEK k=4"``, ``"DistMult"`` (k = 1), ``"ComplEx"`` (k = 2) or ``"TransE"``."""
        if self.model == "transe":
            return "TransE"
        return {1: "DistMult", 2: "ComplEx"}.get(self.num_segments, f"SEEK k={self.num_segments}")


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model, its per-step history and its metrics."""

    config: SEEKConfig
    model: KGEModel
    history: History
    valid: dict[str, float]
    test: dict[str, float]
    seconds_per_epoch: float
    best_epoch: int
    valid_curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, valid MRR) with eval_every

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build_model(config: SEEKConfig, graph: KnowledgeGraph) -> KGEModel:
    """The untrained model that ``config`` describes, sized for ``graph``."""
    if config.model == "transe":
        return TransE(graph.num_entities, graph.num_relations, config.dim, config.margin, init_scale=config.init_scale)
    return SEEK(graph.num_entities, graph.num_relations, config.dim, config.num_segments, config.init_scale)


class _Epochs:
    """Mini-batches of training triples, reshuffled at every pass (``fit`` re-iterates it per epoch)."""

    def __init__(self, triples: torch.Tensor, batch_size: int, generator: torch.Generator) -> None:
        self.triples, self.batch_size, self.generator = triples, batch_size, generator

    def __len__(self) -> int:
        return -(-len(self.triples) // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = torch.randperm(len(self.triples), generator=self.generator)
        return iter(self.triples[order.to(self.triples.device)].split(self.batch_size))


def logistic_loss(
    model: KGEModel, batch: torch.Tensor, config: SEEKConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The summed logistic loss of ``batch`` ``(B, 3)`` and its corruptions, plus the official L2 term.

    Corrupted slots: head and tail, and the relation with ``corrupt_relations``. With
    ``loss="negative_sampling"`` each slot gets ``num_negatives`` uniform random replacements per
    positive; with ``loss="1-n"`` every other entity (relation) replaces it, one matrix product per slot.
    """
    B, n, d = len(batch), config.num_negatives, model.dim
    h, r, t = (F.embedding(batch[:, i], model._table(slot)) for i, slot in enumerate(("head", "relation", "tail")))
    sq = {"head": h.pow(2).sum(-1), "relation": r.pow(2).sum(-1), "tail": t.pow(2).sum(-1)}
    penalty = (sq["head"] + sq["relation"] + sq["tail"]).sum()
    slots: tuple[Side, ...] = ("tail", "head", "relation") if config.corrupt_relations else ("tail", "head")
    if config.loss == "negative_sampling" and n == 0:
        slots = ()
    positive: torch.Tensor | None = None
    loss = torch.zeros((), device=batch.device)
    for slot in slots:
        table = model._table(slot)
        kept = torch.stack([sq[other] for other in ("head", "relation", "tail") if other != slot]).sum(0)  # (B,)
        if config.loss == "1-n":
            own = batch[:, {"head": 0, "relation": 1, "tail": 2}[slot]]
            scores = model._score_all(batch, slot)
            if positive is None:
                positive = scores.gather(1, own[:, None])[:, 0]
            loss = loss + F.softplus(scores).scatter(1, own[:, None], 0.0).sum()  # every other one is a corruption
            penalty = penalty + (len(table) - 1) * kept.sum() + B * table.pow(2).sum() - sq[slot].sum()
        else:
            candidates = torch.randint(len(table), (B, n), generator=generator).to(batch.device)
            if positive is None:  # the first slot (tail) scores the true tail along with its corruptions
                candidates = torch.cat([batch[:, 2:3], candidates], dim=1)
                scores = model._score_candidates(batch, candidates, slot)
                positive, scores, candidates = scores[:, 0], scores[:, 1:], candidates[:, 1:]
            else:
                scores = model._score_candidates(batch, candidates, slot)
            loss = loss + F.softplus(scores).sum()
            penalty = penalty + n * kept.sum() + table.pow(2).sum(1)[candidates].sum()  # norms, then gather
    if positive is None:
        positive = model._score(h, r, t)
    loss = loss + F.softplus(-positive).sum()
    return loss + config.l2 / (2 * d) * penalty


def train(
    config: SEEKConfig,
    graph: KnowledgeGraph,
    *,
    progress: bool = True,
    device: torch.device | str | None = None,
    evaluate_test: bool = True,
) -> TrainResult:
    """Train the model of ``config`` on ``graph.train``; return it with its history and filtered metrics.

    With ``eval_every > 0`` the validation MRR is measured every ``eval_every`` epochs and the best
    model is kept, as the official code selects its checkpoint; ``seconds_per_epoch`` counts training only.
    """
    generator = seed_everything(config.seed)
    target = torch.device(device) if device is not None else default_device()
    model = build_model(config, graph).to(target)
    check_triples(graph.train, model.num_entities, model.num_relations, "graph.train")
    optimizer = torch.optim.Adagrad(model.parameters(), lr=config.lr, initial_accumulator_value=1e-6)
    epochs = _Epochs(graph.train.to(target), config.batch_size, generator)

    def step(batch: torch.Tensor) -> dict[str, float]:
        optimizer.zero_grad(set_to_none=True)
        loss = logistic_loss(model, batch, config, generator)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item() / len(batch)}

    steps_per_epoch = len(epochs)
    best: tuple[float, int, dict[str, Any] | None] = (-1.0, config.num_epochs, None)
    valid_curve: list[tuple[int, float]] = []
    step_count, eval_seconds = 0, 0.0

    def step_and_select(batch: torch.Tensor) -> dict[str, float]:
        nonlocal step_count, eval_seconds, best
        values = step(batch)
        step_count += 1
        epoch, end_of_epoch = divmod(step_count, steps_per_epoch)
        if config.eval_every and end_of_epoch == 0 and epoch % config.eval_every == 0:
            start = time.perf_counter()
            mrr = evaluate(model, graph, "valid")["mrr"]
            valid_curve.append((epoch, mrr))
            if mrr > best[0]:
                best = (mrr, epoch, copy.deepcopy(model.state_dict()))
            eval_seconds += time.perf_counter() - start
        return values

    start = time.perf_counter()
    history = fit(
        step_and_select,
        epochs,
        config.num_epochs * steps_per_epoch,
        desc=f"{config.label} on {graph.name}",
        log_every=max(1, steps_per_epoch // 4),
        progress=progress,
    )
    seconds = time.perf_counter() - start - eval_seconds
    if best[2] is not None:
        model.load_state_dict(best[2])
    valid = evaluate(model, graph, "valid")
    test = evaluate(model, graph, "test") if evaluate_test else {}
    return TrainResult(config, model, history, valid, test, seconds / config.num_epochs, best[1], valid_curve)


def epoch_seconds(
    configs: Sequence[SEEKConfig], graph: KnowledgeGraph, *, repeats: int = 10, device: torch.device | str | None = None
) -> list[float]:
    """Seconds per training epoch (forward, backward, Adagrad; no evaluation) of each of ``configs`` on ``graph``.

    Each is estimated as (its fastest of ``repeats`` training steps on one mini-batch) x (steps per
    epoch), after one warm-up epoch. The configs take turns, step by step, so a busy spell on a shared
    machine slows them all alike, and the minimum keeps the undisturbed steps: other processes only
    ever add time.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} is out of range; expected repeats >= 1")
    target = torch.device(device) if device is not None else default_device()
    steps, batches, counts = [], [], []
    for config in configs:
        generator = seed_everything(config.seed)
        model = build_model(config, graph).to(target)
        optimizer = torch.optim.Adagrad(model.parameters(), lr=config.lr, initial_accumulator_value=1e-6)
        epochs = _Epochs(graph.train.to(target), config.batch_size, generator)

        def step(
            batch: torch.Tensor,
            model: KGEModel = model,
            optimizer: torch.optim.Optimizer = optimizer,
            config: SEEKConfig = config,
            generator: torch.Generator = generator,
        ) -> None:
            optimizer.zero_grad(set_to_none=True)
            logistic_loss(model, batch, config, generator).backward()
            optimizer.step()
            if target.type == "cuda":
                torch.cuda.synchronize(target)

        for batch in epochs:  # warm-up: allocator, caches, Adagrad state
            step(batch)
        steps.append(step)
        batches.append(next(iter(epochs)))
        counts.append(len(epochs))
    best = [float("inf")] * len(steps)
    for _ in range(repeats):
        for i, (step, batch) in enumerate(zip(steps, batches)):
            start = time.perf_counter()
            step(batch)
            best[i] = min(best[i], time.perf_counter() - start)
    return [seconds * count for seconds, count in zip(best, counts)]
