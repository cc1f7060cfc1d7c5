"""Filtered link-prediction metrics for any :class:`~reprobook.seek.model.LinkPredictor`, overall and per relation.

Every test triple ``(h, r, t)`` is asked twice: ``(h, r, ?)`` and ``(?, r, t)``. The true answer is
ranked among all entities with the other known answers (train, valid and test) filtered out, and
ties take the *realistic* rank of :func:`reprobook.metrics.realistic_ranks` (the mean of the
optimistic and pessimistic rank), not the optimistic rank of the official code, so a model that
scores everything alike gets the middle rank, never the first. MRR and Hits@k average both sides.

For SEEK models the ranks come from :func:`reprobook.kernels.kg_rank_counts`: the query vectors of
:meth:`~reprobook.seek.model.SEEK.query` (:func:`~reprobook.seek.scoring.seek_query`) are scored against
every entity and the non-filtered entities scoring above or level with the answer are counted, without
storing the ``(B, E)`` score matrix (the Triton kernel on a GPU, its PyTorch reference elsewhere). Other
models go through ``score_all`` and :func:`reprobook.metrics.filtered_ranks`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from reprobook._validate import check_choice, check_triples
from reprobook.data.kg import KnowledgeGraph
from reprobook.kernels.kg_rank import kg_rank_counts
from reprobook.metrics.ranking import TripleFilter, filter_bitmask, filtered_ranks, ranking_metrics
from reprobook.nn.utils import eval_mode
from reprobook.seek.model import SEEK, KGEModel, LinkPredictor
from reprobook.train import Scores

SPLITS = ("train", "valid", "test")


@dataclass(kw_only=True)
class SEEKScores(Scores):
    """Filtered link-prediction metrics of one model on one split, head and tail queries averaged.

    ``mrr`` and ``hits_at_k`` (the fraction of answers ranked in the top ``k``) lie in 0..1; ``mean_rank``
    is at least 1. Ranks are realistic: ties count half.
    """

    mrr: float
    mean_rank: float
    hits_at_1: float
    hits_at_3: float
    hits_at_10: float

    @classmethod
    def from_ranks(cls, ranks: torch.Tensor, label: str = "") -> SEEKScores:
        """The scores of ``(N,)`` realistic ranks (:func:`reprobook.metrics.ranking_metrics`)."""
        m = ranking_metrics(ranks)
        return cls(
            label=label,
            mrr=m["mrr"],
            mean_rank=m["mean_rank"],
            hits_at_1=m["hits@1"],
            hits_at_3=m["hits@3"],
            hits_at_10=m["hits@10"],
        )

    def row(self) -> dict[str, Any]:
        """``{"method": label, "MRR": ..., "Hits@1": ..., "Hits@3": ..., "Hits@10": ..., "MR": ...}``."""
        return {
            "method": self.label,
            "MRR": self.mrr,
            "Hits@1": self.hits_at_1,
            "Hits@3": self.hits_at_3,
            "Hits@10": self.hits_at_10,
            "MR": self.mean_rank,
        }


@dataclass(frozen=True)
class Ranks:
    """Filtered realistic ranks of ``triples`` ``(N, 3)``: ``head`` and ``tail``, float ``(N,)`` each."""

    triples: torch.Tensor
    head: torch.Tensor
    tail: torch.Tensor

    def metrics(self, mask: torch.Tensor | None = None) -> dict[str, float]:
        """MRR, mean rank and Hits@1/3/10 over both sides (of the triples where ``mask`` is True)."""
        head, tail = (self.head, self.tail) if mask is None else (self.head[mask], self.tail[mask])
        return ranking_metrics(torch.cat([head, tail]))

    def per_relation(self, relations: Sequence[str]) -> dict[str, dict[str, float]]:
        """Metrics for each relation (by name) that has triples here."""
        ids = self.triples[:, 1]
        return {relations[r]: self.metrics(ids == r) for r in ids.unique().tolist()}


def rank_triples(
    model: LinkPredictor,
    triples: torch.Tensor,
    known: TripleFilter,
    *,
    batch_size: int = 512,
    backend: str | None = None,
) -> Ranks:
    """Filtered realistic head and tail ranks of ``triples`` ``(N, 3)``; ``known`` holds every true triple."""
    check_triples(triples, model.num_entities, model.num_relations)
    if known.num_entities != model.num_entities:
        raise ValueError(f"the filter knows {known.num_entities} entities, the model {model.num_entities}")
    device = model.device
    sides: dict[str, list[torch.Tensor]] = {"head": [], "tail": []}
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(triples), batch_size):
            batch = triples[start : start + batch_size].to(device)
            sides["head"].append(_batch_ranks(model, batch, known, "head", backend).cpu())
            sides["tail"].append(_batch_ranks(model, batch, known, "tail", backend).cpu())
    head, tail = (torch.cat(v) if v else torch.zeros(0, dtype=torch.float64) for v in sides.values())
    return Ranks(triples.cpu(), head, tail)


def _batch_ranks(
    model: LinkPredictor,
    batch: torch.Tensor,
    known: TripleFilter,
    side: Literal["head", "tail"],
    backend: str | None,
) -> torch.Tensor:
    if isinstance(model, SEEK):
        bits = filter_bitmask(known, batch.cpu(), side).to(batch.device)
        gold = batch[:, 2] if side == "tail" else batch[:, 0]
        higher, ties = kg_rank_counts(model.query(batch, side), model.entity, gold, bits, backend=backend)
        return higher.double() + 1 + ties.double() / 2  # realistic rank: mean of optimistic and pessimistic
    scores = model.score_all(batch, side)
    return filtered_ranks(scores, batch, known, side)


def evaluate(
    model: LinkPredictor,
    data: KnowledgeGraph,
    split: str = "test",
    *,
    batch_size: int = 512,
    backend: str | None = None,
) -> SEEKScores:
    """Filtered MRR, mean rank and Hits@1/3/10 of ``model`` on ``data``'s ``split``, both sides averaged.

    Runs inside :func:`~reprobook.nn.eval_mode`: the model's train/eval mode is left as it was.
    """
    check_choice("split", split, SPLITS)
    ranks = rank_triples(model, getattr(data, split), known_answers(data), batch_size=batch_size, backend=backend)
    return SEEKScores.from_ranks(torch.cat([ranks.head, ranks.tail]), model.label)


_KNOWN: weakref.WeakKeyDictionary[KnowledgeGraph, TripleFilter] = weakref.WeakKeyDictionary()


def known_answers(graph: KnowledgeGraph) -> TripleFilter:
    """``graph.known_answers()``, built once per graph (evaluation asks for it every few epochs)."""
    if graph not in _KNOWN:
        _KNOWN[graph] = graph.known_answers()
    return _KNOWN[graph]


def metrics_by_pattern(ranks: Ranks, graph: KnowledgeGraph) -> dict[str, dict[str, float]]:
    """Metrics per relation pattern of a synthetic graph: ``symmetric``, ``antisymmetric``, ``composition``.

    ``composition`` groups the relations that are the *result* of a composition (``grandparent_of``).
    """
    if graph.patterns is None:
        raise ValueError(f"graph {graph.name!r} has no known relation patterns (only synthetic graphs do)")
    groups = {
        "symmetric": graph.patterns.symmetric,
        "antisymmetric": graph.patterns.antisymmetric,
        "composition": tuple(rule[2] for rule in graph.patterns.composition),
    }
    ids = ranks.triples[:, 1]
    out = {}
    for name, relations in groups.items():
        mask = torch.isin(ids, torch.tensor([graph.relation_ids[r] for r in relations]))
        if mask.any():
            out[name] = ranks.metrics(mask)
    return out


def direction_accuracy(model: KGEModel, triples: torch.Tensor, margin: float = 1.0) -> float:
    """Fraction of ``triples`` ``(h, r, t)`` scored above their reverse ``(t, r, h)`` by more than ``margin``.

    Scores are logits of the logistic loss, so ``margin=1`` asks the model to find the true direction
    at least ``e`` times likelier, in odds, than the reversed one. A model symmetric in ``h`` and ``t``
    (DistMult) gives both the same score, so on the triples of an antisymmetric relation it gets 0;
    a model that has learnt the direction gets close to 1.
    """
    if not isinstance(model, KGEModel):
        raise TypeError(f"direction_accuracy needs a KGEModel, got {type(model).__name__}")
    check_triples(triples, model.num_entities, model.num_relations)
    if not len(triples):
        raise ValueError("triples is empty")
    reverse = triples[:, [2, 1, 0]]
    with eval_mode(model), torch.no_grad():
        forward_scores, reverse_scores = model.score(triples.to(model.device)), model.score(reverse.to(model.device))
    return float((forward_scores - reverse_scores > margin).double().mean())
