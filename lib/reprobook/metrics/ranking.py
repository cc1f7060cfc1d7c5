"""Filtered link-prediction ranks for knowledge graphs: realistic tie policy, MRR and Hits@k.

:func:`filter_bitmask` packs a :class:`TripleFilter` into the int32 bitmask that
:func:`reprobook.kernels.kg_rank_counts` reads, so ranks can be counted without a ``(B, E)`` score matrix.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from reprobook._validate import check_choice, describe
from reprobook.kernels.kg_rank import WORD_BITS

SIDES = ("head", "tail")


def realistic_ranks(scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Rank of each target among the candidates, higher score ranking first.

    ``scores``: ``(B, E)`` for ``E`` candidate entities; ``targets``: ``(B,)`` the true index;
    ``exclude``: optional ``(B, E)`` bool, True for candidates to leave out (other known true answers,
    the *filtered* setting); a target is never excluded. Returns float ``(B,)``, 1 the best.

    Ties take the *realistic* rank, the mean of the optimistic rank (target first among its ties) and
    the pessimistic rank (target last): the expected rank under random tie-breaking. A model that
    gives every candidate the same score therefore ranks each target ``(E' + 1) / 2``, with ``E'``
    the candidates left after filtering, never 1. NaN scores are refused for the same reason: every
    comparison with NaN is false, which would rank the target first.
    """
    if scores.ndim != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(
            f"scores must be (B, E) and targets (B,), got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN; a NaN score would rank its target first")
    if targets.numel() and not (int(targets.min()) >= 0 and int(targets.max()) < scores.shape[1]):
        raise ValueError(f"targets must lie in 0..{scores.shape[1] - 1}")
    candidates = torch.ones_like(scores, dtype=torch.bool)
    if exclude is not None:
        if exclude.shape != scores.shape or exclude.dtype != torch.bool:
            raise ValueError(f"exclude must be a bool tensor of shape {tuple(scores.shape)}")
        candidates = ~exclude
    candidates = candidates.scatter(1, targets[:, None], True)
    target_scores = scores.gather(1, targets[:, None])
    higher = ((scores > target_scores) & candidates).sum(dim=1)
    tied = ((scores == target_scores) & candidates).sum(dim=1)  # counts the target itself
    optimistic, pessimistic = higher + 1, higher + tied
    return (optimistic + pessimistic).double() / 2


@dataclass(frozen=True)
class TripleFilter:
    """All known true triples, to filter link-prediction ranks.

    ``tails[(h, r)]`` holds every ``t`` with a known triple ``(h, r, t)``; ``heads[(r, t)]`` every
    ``h``. Build it from all splits (train, valid and test) with :meth:`from_triples`.
    """

    tails: dict[tuple[int, int], torch.Tensor]
    heads: dict[tuple[int, int], torch.Tensor]
    num_entities: int

    @classmethod
    def from_triples(cls, triple_sets: Iterable[torch.Tensor], num_entities: int) -> TripleFilter:
        """Filter from long tensors of ``(head, relation, tail)`` triples, each ``(N, 3)``."""
        tails: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        heads: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        for triples in triple_sets:
            _check_triples(triples, num_entities)
            for h, r, t in triples.tolist():
                tails[h, r].add(t)
                heads[r, t].add(h)
        return cls(
            tails={key: torch.tensor(sorted(v)) for key, v in tails.items()},
            heads={key: torch.tensor(sorted(v)) for key, v in heads.items()},
            num_entities=num_entities,
        )

    def mask(self, triples: torch.Tensor, side: Literal["head", "tail"] = "tail") -> torch.Tensor:
        """``(B, E)`` bool, True at the known answers of each query other than the triple's own.

        ``side="tail"`` masks the answers to ``(h, r, ?)``; ``side="head"`` those to ``(?, r, t)``.
        """
        check_choice("side", side, SIDES)
        _check_triples(triples, self.num_entities)
        mask = torch.zeros(len(triples), self.num_entities, dtype=torch.bool)
        empty = torch.zeros(0, dtype=torch.long)
        for row, (h, r, t) in enumerate(triples.tolist()):
            answers = self.tails.get((h, r), empty) if side == "tail" else self.heads.get((r, t), empty)
            mask[row, answers] = True
        targets = triples[:, 2] if side == "tail" else triples[:, 0]
        return mask.scatter(1, targets[:, None].cpu(), False)


def _check_triples(triples: torch.Tensor, num_entities: int) -> None:
    if triples.ndim != 2 or triples.shape[1] != 3 or triples.dtype != torch.long:
        raise ValueError(f"triples must be a long tensor of shape (N, 3), got {triples.dtype} {tuple(triples.shape)}")
    entities = triples[:, [0, 2]]
    if entities.numel() and not (int(entities.min()) >= 0 and int(entities.max()) < num_entities):
        raise ValueError(f"entity ids must lie in 0..{num_entities - 1}")


def filtered_ranks(
    scores: torch.Tensor,
    triples: torch.Tensor,
    known: TripleFilter,
    side: Literal["head", "tail"] = "tail",
) -> torch.Tensor:
    """Filtered realistic ranks of the true tails (``side="tail"``) or heads of ``triples``.

    ``scores``: ``(B, E)``, the model's score for every entity as the answer to ``(h, r, ?)`` (or
    ``(?, r, t)``); ``triples``: ``(B, 3)``. Returns float ``(B,)``; see :func:`realistic_ranks`.
    """
    check_choice("side", side, SIDES)
    targets = triples[:, 2] if side == "tail" else triples[:, 0]
    exclude = known.mask(triples, side).to(scores.device)
    return realistic_ranks(scores, targets.to(scores.device), exclude)


def filter_bitmask(known: TripleFilter, triples: torch.Tensor, side: Literal["head", "tail"] = "tail") -> torch.Tensor:
    """The filter of the queries of ``triples`` ``(B, 3)`` as the bitmask of :func:`~reprobook.kernels.kg_rank_counts`.

    int32 ``(B, ceil(E / 32))`` on CPU: bit ``e % 32`` of word ``e // 32`` is set at every known answer of
    ``(h, r, ?)`` (``side="tail"``) or ``(?, r, t)`` other than the triple's own; no ``(B, E)`` tensor is
    built. The packed answers of every query of ``known`` are computed once per filter and side, then gathered.
    """
    check_choice("side", side, SIDES)
    if (
        not isinstance(triples, torch.Tensor)
        or triples.ndim != 2
        or triples.shape[1] != 3
        or triples.dtype != torch.long
    ):
        raise ValueError(f"triples must be a long tensor (B, 3), got {describe(triples)}")
    index, packed = _packed_answers(known, side)
    triples = triples.cpu()
    h, r, t = triples.unbind(1)
    keys = zip(h.tolist(), r.tolist()) if side == "tail" else zip(r.tolist(), t.tolist())
    rows = torch.tensor([index.get(key, 0) for key in keys], dtype=torch.long)  # row 0 of packed: no answer
    words = packed[rows]  # (B, W) int64, each in [0, 2^32)
    gold = t if side == "tail" else h  # the triple's own answer is not filtered
    if len(gold):
        column = (gold // WORD_BITS)[:, None]
        own = (torch.ones_like(gold) << (gold % WORD_BITS))[:, None]
        words.scatter_(1, column, words.gather(1, column) & ~own)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)  # the int32 with the same bits


_PACKED: dict[tuple[int, str], tuple[weakref.ref[TripleFilter], dict[tuple[int, int], int], torch.Tensor]] = {}


def _packed_answers(known: TripleFilter, side: str) -> tuple[dict[tuple[int, int], int], torch.Tensor]:
    """``(key -> row, packed)``: the answers of every query key of ``known`` as int64 words ``(1 + K, W)``."""
    cached = _PACKED.get((id(known), side))
    if cached is not None and cached[0]() is known:
        return cached[1], cached[2]
    answers = known.tails if side == "tail" else known.heads
    E, W = known.num_entities, -(-known.num_entities // WORD_BITS)
    index = {key: row for row, key in enumerate(answers, start=1)}
    packed = torch.zeros((1 + len(answers)) * W, dtype=torch.int64)
    if answers:
        lengths = torch.tensor([len(v) for v in answers.values()])
        cols = torch.cat(list(answers.values())).long()
        rows = torch.repeat_interleave(torch.arange(1, 1 + len(answers)), lengths)
        packed.index_add_(0, rows * W + cols // WORD_BITS, torch.ones_like(cols) << (cols % WORD_BITS))  # distinct bits
    if E and answers and int(torch.cat(list(answers.values())).max()) >= E:
        raise ValueError(f"the filter holds an entity id >= num_entities = {E}")
    for stale in [k for k, v in _PACKED.items() if v[0]() is None]:
        del _PACKED[stale]
    _PACKED[id(known), side] = (weakref.ref(known), index, packed.view(-1, W))
    return index, packed.view(-1, W)


def ranking_metrics(ranks: torch.Tensor, ks: Sequence[int] = (1, 3, 10)) -> dict[str, float]:
    """MRR, mean rank and Hits@k of ``(N,)`` ranks (1 the best).

    Returns ``{"mrr": ..., "mean_rank": ..., "hits@1": ..., ...}``; MRR and Hits@k lie in 0..1.
    """
    if ranks.ndim != 1 or ranks.numel() == 0:
        raise ValueError(f"ranks must be a non-empty 1-D tensor, got shape {tuple(ranks.shape)}")
    ranks = ranks.double()
    if bool((ranks < 1).any()):
        raise ValueError("ranks must be >= 1")
    metrics = {"mrr": float((1 / ranks).mean()), "mean_rank": float(ranks.mean())}
    metrics.update({f"hits@{k}": float((ranks <= k).double().mean()) for k in ks})
    return metrics
