"""An external anchor: pykeen's own DistMult, ComplEx and RotatE, trained on our split, ranked by our evaluator.

pykeen (Ali et al., JMLR 2021) is a widely used knowledge-graph embedding library. Its models
train here on exactly the :class:`~reprobook.data.kg.KnowledgeGraph` split the chapter uses, with
the same real-parameter budget ``dim`` per entity (ComplEx and RotatE hold ``dim / 2`` complex
numbers), through pykeen's own training loop (sLCWA: uniform negative sampling), its default loss
for each model and its initialisers. Only the ranking is ours: :func:`~reprobook.seek.evaluate.evaluate`
calls pykeen's ``score_h`` / ``score_t`` through :class:`PykeenModel` and applies the same filter and
realistic tie policy, so the numbers sit beside ours on equal terms.

The training loop is pykeen's, not :func:`reprobook.train.fit`: that is the point of an external anchor
(and one call of it fixes pykeen's random draws). Its history holds one loss per epoch.

pykeen is imported inside :func:`train_pykeen` only: the import alone takes several seconds.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any

import torch

from reprobook._validate import check_choice, check_float, check_int
from reprobook.data.kg import KnowledgeGraph
from reprobook.profiles import pick_default
from reprobook.seek.evaluate import SEEKScores, evaluate
from reprobook.seek.model import LinkPredictor
from reprobook.seek.scoring import Side
from reprobook.train import History, RunResult, seed_everything

PYKEEN_MODELS = ("DistMult", "ComplEx", "RotatE")
COMPLEX_VALUED = ("ComplEx", "RotatE")


@dataclass
class PykeenConfig:
    """One pykeen run: its model name, the real-parameter budget ``dim`` and pykeen's training loop settings."""

    model: str = "ComplEx"
    dim: int = 64
    num_epochs: int = pick_default(smoke=2, book=100, full=300)
    batch_size: int = 512
    lr: float = 0.01
    num_negatives: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("model", self.model, PYKEEN_MODELS)
        check_int("dim", self.dim, 1)
        if self.model in COMPLEX_VALUED and self.dim % 2:
            raise ValueError(f"{self.model} stores dim / 2 complex numbers: dim={self.dim} must be even")
        check_int("num_epochs", self.num_epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0, open_low=True)
        check_int("num_negatives", self.num_negatives, 1)
        check_int("seed", self.seed, 0)

    @property
    def label(self) -> str:
        return f"pykeen {self.model}"


class PykeenModel(LinkPredictor):
    """A trained pykeen model behind the ``score_all`` surface of :class:`~reprobook.seek.model.KGEModel`."""

    def __init__(self, pykeen_model: Any, num_entities: int, num_relations: int, name: str) -> None:
        super().__init__()
        self.pykeen_model = pykeen_model  # a submodule: eval_mode reaches it
        self.num_entities, self.num_relations, self.name = num_entities, num_relations, name

    @property
    def label(self) -> str:
        return f"pykeen {self.name}"

    @property
    def device(self) -> torch.device:
        return next(self.pykeen_model.parameters()).device

    def score_all(self, triples: torch.Tensor, side: Side = "tail") -> torch.Tensor:
        """``(B, 3)`` -> ``(B, E)``: pykeen's ``score_t`` (``side="tail"``) or ``score_h``."""
        check_choice("side", side, ("head", "tail"))
        if side == "tail":
            scores: torch.Tensor = self.pykeen_model.score_t(triples[:, :2])
        else:
            scores = self.pykeen_model.score_h(triples[:, 1:])
        return scores


@dataclass(kw_only=True)
class PykeenResult(RunResult):
    """The trained pykeen model (wrapped for our evaluator), its per-epoch losses and its filtered scores."""

    model: PykeenModel
    valid: SEEKScores
    test: SEEKScores
    seconds_per_epoch: float

    @property
    def num_parameters(self) -> int:
        """Real parameters: a complex one counts twice, so the budget compares with ours."""
        return sum(p.numel() * (2 if p.is_complex() else 1) for p in self.model.parameters())


def triples_factory(graph: KnowledgeGraph) -> Any:
    """A pykeen ``TriplesFactory`` over ``graph.train`` with our entity and relation ids."""
    from pykeen.triples import TriplesFactory

    return TriplesFactory(
        mapped_triples=graph.train,
        entity_to_id={name: i for i, name in enumerate(graph.entities)},
        relation_to_id={name: i for i, name in enumerate(graph.relations)},
    )


def train_pykeen(config: PykeenConfig, data: KnowledgeGraph, *, progress: bool = False) -> PykeenResult:
    """Train pykeen's ``config.model`` on ``data.train`` with pykeen's sLCWA loop and Adam; evaluate with ours."""
    from pykeen.models import ComplEx, DistMult, RotatE
    from pykeen.training import SLCWATrainingLoop

    seed_everything(config.seed)
    factory = triples_factory(data)
    model_class = {"DistMult": DistMult, "ComplEx": ComplEx, "RotatE": RotatE}[config.model]
    embedding_dim = config.dim // 2 if config.model in COMPLEX_VALUED else config.dim
    model = model_class(triples_factory=factory, embedding_dim=embedding_dim, random_seed=config.seed)
    optimizer = torch.optim.Adam(model.get_grad_params(), lr=config.lr)
    loop = SLCWATrainingLoop(
        model=model,
        triples_factory=factory,
        optimizer=optimizer,
        negative_sampler_kwargs={"num_negs_per_pos": config.num_negatives},
    )
    # pykeen runs gc.collect() after every epoch, which scans every Python object of the process (most of a
    # second in a notebook that has imported pykeen). gc.freeze() parks the objects that exist now outside
    # the collector's reach for the duration, so that each collection only looks at new ones; numbers unchanged.
    gc.freeze()
    try:
        start = time.perf_counter()  # pykeen's loop, not fit: timed around its one call (no evaluation inside)
        losses = loop.train(
            triples_factory=factory,
            num_epochs=config.num_epochs,
            batch_size=config.batch_size,
            use_tqdm=progress,
            use_tqdm_batch=False,
        )
        seconds = time.perf_counter() - start
    finally:
        gc.unfreeze()
    losses = list(losses or [])
    history = History(num_steps=config.num_epochs, seconds=seconds)
    for epoch, loss in enumerate(losses, start=1):
        history.append(epoch, {"loss": loss})
    wrapped = PykeenModel(model, data.num_entities, data.num_relations, config.model)
    valid, test = evaluate(wrapped, data, "valid"), evaluate(wrapped, data, "test")
    return PykeenResult(
        config=config,
        model=wrapped,
        history=history,
        metrics={"valid_mrr": valid.mrr, "test_mrr": test.mrr},
        valid=valid,
        test=test,
        seconds_per_epoch=seconds / config.num_epochs,
    )
