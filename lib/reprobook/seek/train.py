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

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reprobook._validate import check_choice, check_float, check_int, check_triples
from reprobook.data.kg import KnowledgeGraph
from reprobook.profiles import pick_default
from reprobook.seek.data import DATASETS, load_data
from reprobook.seek.evaluate import SEEKScores, evaluate
from reprobook.seek.model import SEEK, KGEModel, TransE, segments_label
from reprobook.seek.scoring import Side, check_segments
from reprobook.train import BestCheckpoint, RunResult, fit, seed_everything
from reprobook.train import device as default_device

MODELS = ("seek", "transe")
LOSSES = ("negative_sampling", "1-n")


@dataclass
class SEEKConfig:
    """Everything that defines one training run; sizes follow the active profile (:func:`reprobook.pick`).

    The defaults are the book's settings; the comments give the official ones where they differ.
    ``dataset`` names the graph of :func:`~reprobook.seek.data.load_data`. ``dim`` is the number of real
    parameters per entity and per relation for every model, so runs with different ``num_segments`` have
    the same parameter count. ``num_segments=1`` is DistMult and ``num_segments=2`` ComplEx.
    ``model="transe"`` ignores ``num_segments`` and uses ``margin``.
    """

    dataset: str = "umls"
    model: str = "seek"
    dim: int = 64
    num_segments: int = 4
    num_epochs: int = pick_default(smoke=2, book=40, full=200)
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
    eval_every: int = pick_default(smoke=0, book=10, full=20)

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("model", self.model, MODELS)
        check_int("dim", self.dim, 1)
        check_int("num_segments", self.num_segments, 1)
        if self.model == "seek":
            check_segments(self.dim, self.num_segments)
        check_int("num_epochs", self.num_epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0, open_low=True)
        check_int("num_negatives", self.num_negatives, 0)
        if not isinstance(self.corrupt_relations, bool):
            raise ValueError(f"corrupt_relations must be True or False, got {self.corrupt_relations!r}")
        check_float("l2", self.l2, 0)
        check_choice("loss", self.loss, LOSSES)
        check_float("init_scale", self.init_scale, 0)
        check_float("margin", self.margin)
        check_int("seed", self.seed, 0)
        check_int("eval_every", self.eval_every, 0)

    @property
    def label(self) -> str:
        """``"SEEK k=4"``, ``"DistMult"`` (k = 1), ``"ComplEx"`` (k = 2) or ``"TransE"``."""
        return "TransE" if self.model == "transe" else segments_label(self.num_segments)


@dataclass(kw_only=True)
class SEEKResult(RunResult):
    """What :func:`train` returns: the trained model, its history and its filtered scores.

    ``valid`` and ``test`` score the kept model (the best checkpoint on validation MRR with
    ``eval_every > 0``, else the last; ``test`` is None with ``evaluate_test=False``); ``best_epoch`` is
    its epoch. ``history.curve("valid_mrr")`` is the validation curve against the step (epoch = step /
    ``steps_per_epoch``); ``seconds_per_epoch`` is the training time per epoch, evaluation excluded.
    """

    model: KGEModel
    valid: SEEKScores
    test: SEEKScores | None
    seconds_per_epoch: float
    best_epoch: int
    steps_per_epoch: int


def build_model(config: SEEKConfig, data: KnowledgeGraph) -> KGEModel:
    """The untrained model that ``config`` describes, sized for ``data``."""
    if config.model == "transe":
        return TransE(data.num_entities, data.num_relations, config.dim, config.margin, init_scale=config.init_scale)
    return SEEK(data.num_entities, data.num_relations, config.dim, config.num_segments, config.init_scale)


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
    config: SEEKConfig | None = None,
    data: KnowledgeGraph | None = None,
    *,
    progress: bool = True,
    device: torch.device | str | None = None,
    evaluate_test: bool = True,
) -> SEEKResult:
    """Train the model of ``config`` on ``data.train``; return it with its history and filtered scores.

    ``config=None``: the profile's default run; ``data=None``: :func:`~reprobook.seek.data.load_data`.
    Training goes through :func:`reprobook.train.fit`. With ``eval_every > 0`` it measures the validation
    MRR every ``eval_every`` epochs (and after the last) and keeps the best model, as the official code
    selects its checkpoint; ``seconds_per_epoch`` counts training only.
    """
    config = SEEKConfig() if config is None else config
    data = load_data(config) if data is None else data
    generator = seed_everything(config.seed)
    target = torch.device(device) if device is not None else default_device()
    model = build_model(config, data).to(target)
    check_triples(data.train, model.num_entities, model.num_relations, "data.train")
    optimizer = torch.optim.Adagrad(model.parameters(), lr=config.lr, initial_accumulator_value=1e-6)
    epochs = _Epochs(data.train.to(target), config.batch_size, generator)
    steps_per_epoch = len(epochs)

    def step(batch: torch.Tensor) -> dict[str, float]:
        optimizer.zero_grad(set_to_none=True)
        loss = logistic_loss(model, batch, config, generator)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item() / len(batch)}

    best = BestCheckpoint(lower_is_better=False)  # the validation MRR

    def validate(step_number: int) -> dict[str, float]:
        """Validation MRR; keeps a copy of the weights whenever it is the best so far."""
        mrr = evaluate(model, data, "valid").mrr
        best.offer(step_number, mrr, model)
        return {"valid_mrr": mrr}

    history = fit(
        step,
        epochs,
        config.num_epochs * steps_per_epoch,
        evaluate=validate if config.eval_every else None,
        eval_every=steps_per_epoch * config.eval_every if config.eval_every else None,
        desc=f"{config.label} on {data.name}",
        log_every=max(1, steps_per_epoch // 4),
        progress=progress,
    )
    best.restore(model)
    valid = evaluate(model, data, "valid")
    test = evaluate(model, data, "test") if evaluate_test else None
    scores = {"valid_mrr": valid.mrr} | ({"test_mrr": test.mrr} if test is not None else {})
    return SEEKResult(
        config=config,
        model=model,
        history=history,
        metrics=scores,
        valid=valid,
        test=test,
        seconds_per_epoch=history.seconds / config.num_epochs,
        best_epoch=config.num_epochs if best.step is None else best.step // steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
    )


def epoch_seconds(
    configs: Sequence[SEEKConfig], data: KnowledgeGraph, *, repeats: int = 10, device: torch.device | str | None = None
) -> list[float]:
    """Seconds per training epoch (forward, backward, Adagrad; no evaluation) of each of ``configs`` on ``data``.

    Each is estimated as (its fastest of ``repeats`` training steps on one mini-batch) x (steps per
    epoch), after one warm-up epoch. The configs take turns, step by step, so a busy spell on a shared
    machine slows them all alike, and the minimum keeps the undisturbed steps: other processes only
    ever add time.
    """
    check_int("repeats", repeats, 1)
    target = torch.device(device) if device is not None else default_device()
    steps, batches, counts = [], [], []
    for config in configs:
        generator = seed_everything(config.seed)
        model = build_model(config, data).to(target)
        optimizer = torch.optim.Adagrad(model.parameters(), lr=config.lr, initial_accumulator_value=1e-6)
        epochs = _Epochs(data.train.to(target), config.batch_size, generator)

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
