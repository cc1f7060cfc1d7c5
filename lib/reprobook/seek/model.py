"""Knowledge-graph embedding models with one surface: SEEK (DistMult at k = 1, ComplEx at k = 2) and TransE.

A model holds an entity table ``(E, d)`` and a relation table ``(R, d)`` and scores triples; higher
means more plausible, and the logistic loss reads the score as a logit. Three ways to score:

* :meth:`KGEModel.score` -- one score per triple: ``(B, 3)`` ids -> ``(B,)``;
* :meth:`KGEModel.score_candidates` -- each triple with its ``head``, ``relation`` or ``tail``
  replaced by ``n`` candidates (negative sampling): ``(B, 3)``, ``(B, n)`` -> ``(B, n)``;
* :meth:`KGEModel.score_all` -- 1-vs-all: every entity as the head or the tail, ``(B, 3)`` -> ``(B, E)``.

For SEEK the last two are matrix products with the query vector of :func:`~reprobook.seek.scoring.seek_query`
(the score is linear in each argument), never a Python loop over entities or segments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reprobook._validate import check_choice, check_triples, describe
from reprobook.seek.scoring import SIDES, Side, check_segments, seek_query, transe_score

ENTITY_SIDES = ("head", "tail")


def segments_label(num_segments: int) -> str:
    """The name of SEEK with ``k`` segments in tables: ``"DistMult"`` (k = 1), ``"ComplEx"`` (k = 2), ``"SEEK k=4"``."""
    return {1: "DistMult", 2: "ComplEx"}.get(num_segments, f"SEEK k={num_segments}")


class LinkPredictor(nn.Module):
    """What the evaluator ranks with: the graph's sizes, a device and 1-vs-all scores.

    Every :class:`KGEModel` is one, and so is the pykeen wrapper of :mod:`~reprobook.seek.baselines`.
    """

    num_entities: int
    num_relations: int

    @property
    def label(self) -> str:
        """The model's name in tables."""
        return type(self).__name__

    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    def score_all(self, triples: torch.Tensor, side: Side = "tail") -> torch.Tensor:
        """1-vs-all: ``(B, 3)`` -> ``(B, E)``, every entity as the ``side`` (head or tail) of each triple."""
        raise NotImplementedError


class KGEModel(LinkPredictor):
    """Entity and relation tables, initialised ``U(-init_scale, init_scale)`` as in the official code."""

    def __init__(self, num_entities: int, num_relations: int, dim: int, init_scale: float = 0.01) -> None:
        super().__init__()
        if num_entities < 1 or num_relations < 1:
            raise ValueError(f"need at least one entity and one relation, got {num_entities} and {num_relations}")
        self.num_entities, self.num_relations, self.dim = num_entities, num_relations, dim
        self.entity = nn.Parameter(torch.empty(num_entities, dim).uniform_(-init_scale, init_scale))
        self.relation = nn.Parameter(torch.empty(num_relations, dim).uniform_(-init_scale, init_scale))

    @property
    def device(self) -> torch.device:
        return self.entity.device

    def _table(self, side: str) -> torch.Tensor:
        return self.relation if side == "relation" else self.entity

    def _check(self, triples: torch.Tensor) -> None:
        check_triples(triples, self.num_entities, self.num_relations)

    # The scores: subclasses implement the three unchecked methods below.
    def _score(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _score_candidates(self, triples: torch.Tensor, candidates: torch.Tensor, side: Side) -> torch.Tensor:
        raise NotImplementedError

    def score(self, triples: torch.Tensor) -> torch.Tensor:
        """Scores of ``triples`` ``(B, 3)`` -> ``(B,)``."""
        self._check(triples)
        h, r, t = (F.embedding(triples[:, i], self._table(slot)) for i, slot in enumerate(("head", "relation", "tail")))
        return self._score(h, r, t)

    def score_candidates(self, triples: torch.Tensor, candidates: torch.Tensor, side: Side) -> torch.Tensor:
        """Scores of ``triples`` ``(B, 3)`` with the ``side`` slot replaced by each of ``candidates`` ``(B, n)``."""
        check_choice("side", side, SIDES)
        self._check(triples)
        count, kind = (self.num_relations, "relation") if side == "relation" else (self.num_entities, "entity")
        if candidates.dtype != torch.long or candidates.ndim != 2 or candidates.shape[0] != triples.shape[0]:
            raise ValueError(
                f"candidates must be a long tensor (B, n) with B = {triples.shape[0]}, got {describe(candidates)}"
            )
        if candidates.numel():
            low, high = int(candidates.min()), int(candidates.max())
            if low < 0 or high >= count:
                bad = low if low < 0 else high
                raise ValueError(f"candidates holds unknown {kind} id {bad}; the model knows {kind} ids 0..{count - 1}")
        return self._score_candidates(triples, candidates, side)

    def score_all(self, triples: torch.Tensor, side: Side = "tail") -> torch.Tensor:
        """1-vs-all: ``(B, 3)`` -> ``(B, E)``, every entity as the ``side`` of each triple."""
        check_choice("side", side, ENTITY_SIDES)
        self._check(triples)
        return self._score_all(triples, side)

    def _score_all(self, triples: torch.Tensor, side: Side) -> torch.Tensor:
        """Unchecked 1-vs-all, ``side`` may also be ``"relation"`` (every relation, for training)."""
        count = self.num_relations if side == "relation" else self.num_entities
        everything = torch.arange(count, device=triples.device).expand(len(triples), -1)
        return self._score_candidates(triples, everything, side)


class SEEK(KGEModel):
    """SEEK with ``k = num_segments`` segments (Xu et al., 2020); DistMult at ``k = 1``, ComplEx at ``k = 2``.

    ``dim`` = ``d``, the number of real parameters per entity and per relation for every ``k``: the
    segments cut ``d`` into ``k`` pieces and add no parameter. Score: :func:`~reprobook.seek.scoring.seek_score`.
    """

    def __init__(
        self, num_entities: int, num_relations: int, dim: int, num_segments: int, init_scale: float = 0.01
    ) -> None:
        check_segments(dim, num_segments)
        super().__init__(num_entities, num_relations, dim, init_scale)
        self.num_segments = num_segments

    def extra_repr(self) -> str:
        return f"entities={self.num_entities}, relations={self.num_relations}, d={self.dim}, k={self.num_segments}"

    @property
    def label(self) -> str:
        """``"DistMult"`` (k = 1), ``"ComplEx"`` (k = 2) or ``"SEEK k=..."``."""
        return segments_label(self.num_segments)

    def query(self, triples: torch.Tensor, side: Side) -> torch.Tensor:
        """``q (B, d)`` with ``score = <q, e>`` for the embedding ``e`` in slot ``side`` (unchecked ids)."""
        h, r, t = triples.unbind(1)
        E, R, k = self.entity, self.relation, self.num_segments
        if side == "tail":
            return seek_query(F.embedding(h, E), F.embedding(r, R), k, "tail")
        if side == "head":
            return seek_query(F.embedding(r, R), F.embedding(t, E), k, "head")
        return seek_query(F.embedding(h, E), F.embedding(t, E), k, "relation")

    def _score(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (seek_query(h, r, self.num_segments, "tail") * t).sum(-1)

    def _score_candidates(self, triples: torch.Tensor, candidates: torch.Tensor, side: Side) -> torch.Tensor:
        q, table = self.query(triples, side), self._table(side)  # q: (B, d)
        if 32 * candidates.shape[1] >= len(table):  # a small table: scoring it all (one GEMM) beats n gathers
            return (q @ table.T).gather(1, candidates)
        return torch.bmm(F.embedding(candidates, table), q[:, :, None])[:, :, 0]  # (B, n, d) @ (B, d, 1)

    def _score_all(self, triples: torch.Tensor, side: Side) -> torch.Tensor:
        return self.query(triples, side) @ self._table(side).T  # one GEMM: (B, d) @ (d, E)


class TransE(KGEModel):
    """TransE (Bordes et al., 2013), a translation ``h + r ~ t``, as a logit ``margin - ||h + r - t||_p``.

    The ``margin`` lets a true triple reach a positive logit under the logistic loss.
    """

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        dim: int,
        margin: float = 2.0,
        p: int = 1,
        init_scale: float = 0.01,
    ) -> None:
        super().__init__(num_entities, num_relations, dim, init_scale)
        if p not in (1, 2):
            raise ValueError(f"p={p!r} is not valid; expected 1 or 2")
        self.margin, self.p = margin, p

    def extra_repr(self) -> str:
        sizes = f"entities={self.num_entities}, relations={self.num_relations}, d={self.dim}"
        return f"{sizes}, margin={self.margin}, p={self.p}"

    def _score(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return transe_score(h, r, t, self.margin, self.p)

    def _score_candidates(self, triples: torch.Tensor, candidates: torch.Tensor, side: Side) -> torch.Tensor:
        h, r, t = (
            F.embedding(triples[:, i], self._table(slot))[:, None, :]
            for i, slot in enumerate(("head", "relation", "tail"))
        )
        e = F.embedding(candidates, self._table(side))  # (B, n, d)
        if side == "head":
            h = e
        elif side == "relation":
            r = e
        else:
            t = e
        return transe_score(h, r, t, self.margin, self.p)
