"""An external anchor: pykeen's own DistMult, ComplEx and RotatE, trained on our split, ranked by our evaluator.

pykeen (Ali et al., JMLR 2021) is a widely used knowledge-graph embedding library. Its models
train here on exactly the :class:`~reprobook.data.kg.KnowledgeGraph` split the chapter uses, with
the same real-parameter budget ``dim`` per entity (ComplEx and RotatE hold ``dim / 2`` complex
numbers), through pykeen's own training loop (sLCWA: uniform negative sampling), its default loss
for each model and its initialisers. Only the ranking is ours: :func:`~reprobook.seek.evaluate.rank_triples`
calls pykeen's ``score_h`` / ``score_t`` and applies the same filter and realistic tie policy, so
the numbers sit beside ours on equal terms.

pykeen is imported inside :func:`train_pykeen` only: the import alone takes several seconds.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from reprobook._validate import check_choice
from reprobook.data.kg import KnowledgeGraph
from reprobook.profiles import pick
from reprobook.seek.evaluate import evaluate
from reprobook.train import seed_everything

PYKEEN_MODELS = ("DistMult", "ComplEx", "RotatE")
COMPLEX_VALUED = ("ComplEx", "RotatE")


@dataclass
class PykeenConfig:
    """One pykeen run: its model name, the real-parameter budget ``dim`` and pykeen's training loop settings."""

    model: str = "ComplEx"
    dim: int = 64
    num_epochs: int = field(default_factory=lambda: pick(smoke=2, book=100, full=300))
    batch_size: int = 512
    lr: float = 0.01
    num_negatives: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("model", self.model, PYKEEN_MODELS)
        if self.model in COMPLEX_VALUED and self.dim % 2:
            raise ValueError(f"{self.model} stores dim / 2 complex numbers: dim={self.dim} must be even")

    @property
    def label(self) -> str:
        return f"pykeen {self.model}"


@dataclass
class PykeenResult:
    """The trained pykeen model (wrapped for our evaluator) and its filtered metrics."""

    config: PykeenConfig
    model: PykeenScorer
    losses: list[float]
    valid: dict[str, float]
    test: dict[str, float]
    seconds_per_epoch: float

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() * (2 if p.is_complex() else 1) for p in self.model.pykeen_model.parameters())


class PykeenScorer:
    """Adapter: a trained pykeen model with the ``score_all`` surface of :class:`~reprobook.seek.model.KGEModel`."""

    def __init__(self, pykeen_model: Any, num_entities: int, num_relations: int) -> None:
        self.pykeen_model, self.num_entities, self.num_relations = pykeen_model, num_entities, num_relations

    @property
    def device(self) -> torch.device:
        return next(self.pykeen_model.parameters()).device

    def score_all(self, triples: torch.Tensor, side: str = "tail") -> torch.Tensor:
        """``(B, 3)`` -> ``(B, E)``: pykeen's ``score_t`` (``side="tail"``) or ``score_h``."""
        check_choice("side", side, ("head", "tail"))
        self.pykeen_model.eval()
        if side == "tail":
            scores: torch.Tensor = self.pykeen_model.score_t(triples[:, :2])
        else:
            scores = self.pykeen_model.score_h(triples[:, 1:])
        return scores


def triples_factory(graph: KnowledgeGraph) -> Any:
    """A pykeen ``TriplesFactory`` over ``graph.train`` with our entity and relation ids."""
    from pykeen.triples import TriplesFactory

    return TriplesFactory(
        mapped_triples=graph.train,
        entity_to_id={name: i for i, name in enumerate(graph.entities)},
        relation_to_id={name: i for i, name in enumerate(graph.relations)},
    )


def knowledge_graph_from_pykeen(name: str) -> KnowledgeGraph:
    """A dataset of ``pykeen.datasets`` (``"FB15k237"``, ``"WN18RR"``, ``"Nations"``, ...) as a :class:`KnowledgeGraph`.

    Datasets that pykeen does not ship (FB15k-237 and most others) are downloaded by pykeen into its
    own cache on first use: this needs the network. Entity and relation ids are pykeen's (sorted names).
    """
    import pykeen.datasets

    dataset = pykeen.datasets.get_dataset(dataset=name)
    entities = tuple(sorted(dataset.entity_to_id, key=dataset.entity_to_id.__getitem__))
    relations = tuple(sorted(dataset.relation_to_id, key=dataset.relation_to_id.__getitem__))
    splits = (dataset.training, dataset.validation, dataset.testing)
    if any(split is None for split in splits):
        raise ValueError(f"pykeen dataset {name!r} has no validation split")
    train, valid, test = (split.mapped_triples.long().contiguous() for split in splits if split is not None)
    return KnowledgeGraph(name.lower(), entities, relations, train, valid, test)


def train_pykeen(config: PykeenConfig, graph: KnowledgeGraph, *, progress: bool = False) -> PykeenResult:
    """Train pykeen's ``config.model`` on ``graph.train`` with pykeen's sLCWA loop and Adam; evaluate with ours."""
    from pykeen.models import ComplEx, DistMult, RotatE
    from pykeen.training import SLCWATrainingLoop

    seed_everything(config.seed)
    factory = triples_factory(graph)
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
        start = time.perf_counter()
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
    scorer = PykeenScorer(model, graph.num_entities, graph.num_relations)
    valid, test = evaluate(scorer, graph, "valid"), evaluate(scorer, graph, "test")
    return PykeenResult(config, scorer, list(losses or []), valid, test, seconds / config.num_epochs)
