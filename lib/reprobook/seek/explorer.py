"""A query explorer: pick a head and a relation, see the model's top tails with their scores.

:func:`top_tails` answers one ``(head, relation, ?)`` query live (in Jupyter or Colab, any names).
:func:`query_explorer` precomputes the answers to a set of queries and returns plain HTML: a
drop-down list and one table per query, switched by an inline ``onchange`` handler, the pattern of
:mod:`reprobook.widgets`. It needs no running kernel, so the built HTML book keeps it: the first
query's table shows even where scripts are off.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from typing import Any

import torch

from reprobook._html import HTMLWidget
from reprobook.data.kg import KnowledgeGraph
from reprobook.nn.utils import eval_mode
from reprobook.seek.model import KGEModel

_ids = itertools.count()


def _split_of(graph: KnowledgeGraph) -> dict[tuple[int, int, int], str]:
    return {(h, r, t): split for split in ("train", "valid", "test") for h, r, t in getattr(graph, split).tolist()}


def top_tails(model: KGEModel, graph: KnowledgeGraph, head: str, relation: str, top: int = 5) -> list[dict[str, Any]]:
    """The ``top`` best-scoring tails of ``(head, relation, ?)``, best first.

    Each row: ``tail`` (name), ``score`` (the logit), ``probability`` (its sigmoid) and ``known``:
    the split holding ``(head, relation, tail)`` (``"train"``, ``"valid"``, ``"test"``) or ``""``.
    """
    if head not in graph.entity_ids:
        raise ValueError(f"unknown entity {head!r}; e.g. {', '.join(graph.entities[:5])}")
    if relation not in graph.relation_ids:
        raise ValueError(f"unknown relation {relation!r}; one of: {', '.join(graph.relations)}")
    if top < 1:
        raise ValueError(f"top={top} is out of range; expected top >= 1")
    return _answers(model, graph, [(graph.entity_ids[head], graph.relation_ids[relation])], top, _split_of(graph))[0]


def _answers(
    model: KGEModel,
    graph: KnowledgeGraph,
    queries: Sequence[tuple[int, int]],
    top: int,
    split_of: dict[tuple[int, int, int], str],
) -> list[list[dict[str, Any]]]:
    triples = torch.tensor([[h, r, 0] for h, r in queries], dtype=torch.long, device=model.device)
    with eval_mode(model), torch.no_grad():
        scores = model.score_all(triples, "tail").cpu()
    best = scores.topk(min(top, scores.shape[1]), dim=1)
    out = []
    for (h, r), values, indices in zip(queries, best.values.tolist(), best.indices.tolist()):
        out.append(
            [
                {
                    "tail": graph.entities[t],
                    "score": v,
                    "probability": float(torch.sigmoid(torch.tensor(v))),
                    "known": split_of.get((h, r, t), ""),
                }
                for v, t in zip(values, indices)
            ]
        )
    return out


def query_explorer(
    model: KGEModel,
    graph: KnowledgeGraph,
    queries: Sequence[tuple[str, str]],
    top: int = 5,
    title: str = "",
) -> Any:
    """Static HTML explorer of ``queries`` (``(head, relation)`` names): a drop-down and a top-``top`` table each.

    Returns an :class:`~reprobook.widgets.HTMLWidget`; a notebook cell ending with it renders it.
    """

    if not queries:
        raise ValueError("queries must hold at least one (head, relation) pair")
    for head, relation in queries:
        top_tails(model, graph, head, relation, 1)  # validates the names
    ids = [(graph.entity_ids[h], graph.relation_ids[r]) for h, r in queries]
    answers = _answers(model, graph, ids, top, _split_of(graph))
    uid = f"rb-kg-explorer-{next(_ids)}"
    options, tables = [], []
    for index, ((head, relation), rows) in enumerate(zip(queries, answers)):
        label = html.escape(f"({head}, {relation}, ?)")
        options.append(f'<option value="{index}">{label}</option>')
        body = "".join(
            f"<tr><td>{rank}</td><td>{html.escape(row['tail'])}</td>"
            f"<td style='text-align:right'>{row['score']:.2f}</td>"
            f"<td style='text-align:right'>{row['probability']:.3f}</td><td>{row['known'] or '&ndash;'}</td></tr>"
            for rank, row in enumerate(rows, start=1)
        )
        display = "" if index == 0 else "display:none;"
        tables.append(
            f'<table class="{uid}-table" data-query="{index}" '
            f'style="{display}border-collapse:collapse;margin-top:4px;">'
            f"<caption style='text-align:left;font-weight:bold'>{label}</caption>"
            "<thead><tr><th>rank</th><th>tail</th><th>score</th><th>&sigma;(score)</th><th>known fact</th></tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    handler = (
        f"var v=this.value;document.querySelectorAll('.{uid}-table').forEach(function(t)"
        "{t.style.display=(t.dataset.query===v)?'':'none';});"
    )
    heading = f"<div style='font-weight:bold;margin-bottom:4px'>{html.escape(title)}</div>" if title else ""
    markup = (
        f'<div class="reprobook-kg-explorer" id="{uid}">{heading}'
        f'<label>query: <select aria-label="query" onchange="{handler}">{"".join(options)}</select></label>'
        f"{''.join(tables)}</div>"
    )
    return HTMLWidget(markup)
