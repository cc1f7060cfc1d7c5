"""Knowledge graphs: three small benchmarks shipped with PyKEEN, and a synthetic family graph.

:func:`load_kg` reads Nations, UMLS and Kinships from the text files inside the installed ``pykeen``
package, without importing it (the import takes seconds). Their sizes, over all three splits:

============  ========  =========  =====  =====  ====
name          entities  relations  train  valid  test
============  ========  =========  =====  =====  ====
``nations``         14         55   1592    199   201
``umls``           135         46   5216    652   661
``kinships``       104         25   8544   1068  1074
============  ========  =========  =====  =====  ====

:func:`family_graph` builds families whose relations have known logical patterns (symmetric,
antisymmetric, inverse, compositional), listed in :attr:`KnowledgeGraph.patterns`, so a model's
ability to capture each pattern can be tested.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from reprobook._validate import check_choice, check_int
from reprobook.metrics.ranking import TripleFilter

DATASETS = ("nations", "umls", "kinships")
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class RelationPatterns:
    """Which relations of a graph obey which logical pattern, by relation name.

    ``symmetric``: ``(x, r, y)`` implies ``(y, r, x)``. ``antisymmetric``: ``(x, r, y)`` excludes
    ``(y, r, x)``. ``inverse`` pairs ``(r, s)``: ``(x, r, y)`` if and only if ``(y, s, x)``.
    ``composition`` triples ``(r1, r2, r3)``: ``(x, r3, z)`` if and only if some ``y`` has
    ``(x, r1, y)`` and ``(y, r2, z)``.
    """

    symmetric: tuple[str, ...]
    antisymmetric: tuple[str, ...]
    inverse: tuple[tuple[str, str], ...]
    composition: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, eq=False)
class KnowledgeGraph:
    """A knowledge graph split for link prediction.

    ``entities`` and ``relations`` are sorted names; an id is a position in them. ``train``, ``valid``
    and ``test`` are long tensors of ``(head, relation, tail)`` ids, each ``(N, 3)``. ``patterns`` is
    known only for synthetic graphs.
    """

    name: str
    entities: tuple[str, ...]
    relations: tuple[str, ...]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    patterns: RelationPatterns | None = None

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    @functools.cached_property
    def entity_ids(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.entities)}

    @functools.cached_property
    def relation_ids(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.relations)}

    def counts(self) -> dict[str, int]:
        """Numbers of entities, relations and triples per split."""
        return {
            "entities": self.num_entities,
            "relations": self.num_relations,
            **{split: len(getattr(self, split)) for split in SPLITS},
        }

    def all_triples(self) -> torch.Tensor:
        """Train, valid and test triples together, ``(N, 3)``."""
        return torch.cat([self.train, self.valid, self.test])

    def known_answers(self) -> TripleFilter:
        """The filter of every known triple (all splits), for filtered ranking metrics."""
        return TripleFilter.from_triples([self.train, self.valid, self.test], self.num_entities)

    def labels(self, triples: torch.Tensor) -> list[tuple[str, str, str]]:
        """``(N, 3)`` id triples as ``(head, relation, tail)`` names, for display."""
        return [(self.entities[h], self.relations[r], self.entities[t]) for h, r, t in triples.tolist()]


def _from_named(
    name: str, splits: dict[str, list[tuple[str, str, str]]], patterns: RelationPatterns | None = None
) -> KnowledgeGraph:
    """Index named triples: entity and relation ids follow sorted names over all splits."""
    rows = [row for split in SPLITS for row in splits[split]]
    entities = tuple(sorted({h for h, _, _ in rows} | {t for _, _, t in rows}))
    relations = tuple(sorted({r for _, r, _ in rows}))
    entity_id = {e: i for i, e in enumerate(entities)}
    relation_id = {r: i for i, r in enumerate(relations)}

    def to_tensor(split: list[tuple[str, str, str]]) -> torch.Tensor:
        ids = [(entity_id[h], relation_id[r], entity_id[t]) for h, r, t in split]
        return torch.tensor(ids, dtype=torch.long).reshape(-1, 3)

    train, valid, test = (to_tensor(splits[s]) for s in SPLITS)
    return KnowledgeGraph(name, entities, relations, train, valid, test, patterns)


def _pykeen_dir() -> Path:
    spec = importlib.util.find_spec("pykeen")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("load_kg reads the data files shipped with pykeen: pip install pykeen")
    return Path(spec.submodule_search_locations[0]) / "datasets"


def _read_triples(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{path}:{number}: expected 3 tab-separated fields, got {len(fields)}")
        rows.append((fields[0], fields[1], fields[2]))
    return rows


def load_kg(name: str) -> KnowledgeGraph:
    """Nations, UMLS or Kinships, with PyKEEN's train/valid/test split (sizes in the module docstring)."""
    check_choice("name", name, DATASETS)
    folder = _pykeen_dir() / name
    return _from_named(name, {split: _read_triples(folder / f"{split}.txt") for split in SPLITS})


FAMILY_PATTERNS = RelationPatterns(
    symmetric=("married_to", "sibling_of"),
    antisymmetric=("child_of", "grandchild_of", "grandparent_of", "parent_of"),
    inverse=(("parent_of", "child_of"), ("grandparent_of", "grandchild_of")),
    composition=(("parent_of", "parent_of", "grandparent_of"), ("child_of", "child_of", "grandchild_of")),
)


MAX_FAMILIES = 100_000
"""About 3 million triples: beyond that the pure-Python generator would run for minutes (refused, not attempted)."""


def family_graph(num_families: int = 20, seed: int = 0, held_out: float = 0.1) -> KnowledgeGraph:
    """Synthetic families of three generations, with the relation patterns of ``FAMILY_PATTERNS``.

    Each family has a founding couple with 2-4 children; the first child, and each later one with
    probability 3/4, marries a newcomer and has 1-3 children. People are named ``f{family}_p{k}``.
    Relations: ``married_to`` and ``sibling_of`` (full siblings; symmetric), ``parent_of`` and its
    inverse ``child_of``, ``grandparent_of`` (= ``parent_of`` twice) and its inverse
    ``grandchild_of``. Every fact appears once, in one split.

    A fraction ``held_out`` of the triples goes to ``valid`` and the same to ``test``, drawn at random
    but never taking an entity's last training triple, so every entity is seen in training.
    """
    check_int("num_families", num_families, 1, MAX_FAMILIES)
    if not 0 <= held_out < 0.5:
        raise ValueError(f"held_out={held_out!r} is out of range; expected 0 <= held_out < 0.5")
    rng = random.Random(seed)
    triples: list[tuple[str, str, str]] = []
    for family in range(num_families):
        triples += _one_family(f"f{family}_p", rng)
    return _from_named("family", _split_keeping_entities(triples, held_out, rng), FAMILY_PATTERNS)


def _one_family(prefix: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """The triples of one family; ``prefix`` plus a counter names its people."""
    people = (f"{prefix}{k}" for k in itertools.count())
    parents: dict[str, tuple[str, str]] = {}  # child -> (parent, parent)
    founders = (next(people), next(people))
    couples = [founders]
    children = [next(people) for _ in range(rng.randint(2, 4))]
    parents.update(dict.fromkeys(children, founders))
    for i, child in enumerate(children):
        if i == 0 or rng.random() < 0.75:
            couple = (child, next(people))
            couples.append(couple)
            grandchildren = [next(people) for _ in range(rng.randint(1, 3))]
            parents.update(dict.fromkeys(grandchildren, couple))

    triples = [(a, "married_to", b) for x, y in couples for a, b in ((x, y), (y, x))]
    for child, pair in parents.items():
        triples += [(p, "parent_of", child) for p in pair] + [(child, "child_of", p) for p in pair]
        for grandparent in parents.get(pair[0], ()) + parents.get(pair[1], ()):
            triples += [(grandparent, "grandparent_of", child), (child, "grandchild_of", grandparent)]
        siblings = [other for other, others_pair in parents.items() if others_pair == pair and other != child]
        triples += [(child, "sibling_of", sibling) for sibling in siblings]
    return triples


def _split_keeping_entities(
    triples: list[tuple[str, str, str]], held_out: float, rng: random.Random
) -> dict[str, list[tuple[str, str, str]]]:
    """Random valid/test triples that leave every entity at least one training triple."""
    order = list(triples)
    rng.shuffle(order)
    degree: dict[str, int] = {}
    for h, _, t in order:
        degree[h] = degree.get(h, 0) + 1
        degree[t] = degree.get(t, 0) + 1
    wanted = int(held_out * len(order))
    splits: dict[str, list[tuple[str, str, str]]] = {split: [] for split in SPLITS}
    for h, r, t in order:
        split = next((s for s in ("test", "valid") if len(splits[s]) < wanted), "train")
        if split != "train" and min(degree[h], degree[t]) > 1:
            degree[h] -= 1
            degree[t] -= 1
        else:
            split = "train"
        splits[split].append((h, r, t))
    return splits
