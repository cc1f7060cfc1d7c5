from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from reprobook.data.kg import DATASETS, FAMILY_PATTERNS, KnowledgeGraph, family_graph, load_kg

Facts = set[tuple[int, int]]


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("nations", {"entities": 14, "relations": 55, "train": 1592, "valid": 199, "test": 201}),
        ("umls", {"entities": 135, "relations": 46, "train": 5216, "valid": 652, "test": 661}),
        ("kinships", {"entities": 104, "relations": 25, "train": 8544, "valid": 1068, "test": 1074}),
    ],
)
def test_pykeen_datasets_load_with_known_sizes(name: str, counts: dict[str, int]) -> None:
    kg = load_kg(name)
    assert kg.counts() == counts
    for split in (kg.train, kg.valid, kg.test):
        assert split.dtype == torch.long and split.shape[1] == 3
        assert int(split[:, [0, 2]].max()) < kg.num_entities and int(split[:, 1].max()) < kg.num_relations
    assert list(kg.entities) == sorted(kg.entities) and list(kg.relations) == sorted(kg.relations)


def test_reads_files_without_importing_pykeen() -> None:
    code = "import sys; from reprobook.data.kg import load_kg; load_kg('umls'); print('pykeen' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_loading_is_deterministic_and_labels_round_trip() -> None:
    a, b = load_kg("nations"), load_kg("nations")
    assert torch.equal(a.train, b.train) and a.entities == b.entities
    assert a.labels(a.train[:1]) == [("netherlands", "militaryalliance", "uk")]  # first line of train.txt
    h, r, t = a.labels(a.test[:1])[0]
    assert a.test[0].tolist() == [a.entity_ids[h], a.relation_ids[r], a.entity_ids[t]]


def test_unknown_dataset() -> None:
    with pytest.raises(ValueError, match=r"name='fb15k'.*'nations', 'umls', 'kinships'"):
        load_kg("fb15k")
    assert DATASETS == ("nations", "umls", "kinships")


def _facts(kg: KnowledgeGraph, relation: str) -> Facts:
    triples = kg.all_triples()
    rows = triples[triples[:, 1] == kg.relation_ids[relation]]
    return {(h, t) for h, _, t in rows.tolist()}


def _compose(first: Facts, second: Facts) -> Facts:
    return {(x, z) for x, y in first for y2, z in second if y == y2}


@pytest.fixture(scope="module")
def family() -> KnowledgeGraph:
    return family_graph(num_families=15, seed=0)


def test_family_relations_named_and_present(family: KnowledgeGraph) -> None:
    assert family.patterns == FAMILY_PATTERNS
    named = set(FAMILY_PATTERNS.symmetric) | set(FAMILY_PATTERNS.antisymmetric)
    assert named == set(family.relations)
    assert all(len(_facts(family, r)) > 0 for r in family.relations)


def test_family_symmetric_relations(family: KnowledgeGraph) -> None:
    for relation in FAMILY_PATTERNS.symmetric:
        facts = _facts(family, relation)
        assert facts == {(t, h) for h, t in facts}, relation
        assert not any(h == t for h, t in facts), relation


def test_family_antisymmetric_relations(family: KnowledgeGraph) -> None:
    for relation in FAMILY_PATTERNS.antisymmetric:
        facts = _facts(family, relation)
        assert not facts & {(t, h) for h, t in facts}, relation


def test_family_inverse_pairs(family: KnowledgeGraph) -> None:
    for relation, inverse in FAMILY_PATTERNS.inverse:
        assert _facts(family, inverse) == {(t, h) for h, t in _facts(family, relation)}


def test_family_compositions(family: KnowledgeGraph) -> None:
    assert ("parent_of", "parent_of", "grandparent_of") in FAMILY_PATTERNS.composition
    for first, second, composed in FAMILY_PATTERNS.composition:
        assert _facts(family, composed) == _compose(_facts(family, first), _facts(family, second))


def test_family_siblings_share_both_parents(family: KnowledgeGraph) -> None:
    parents: dict[int, set[int]] = {}
    for parent, child in _facts(family, "parent_of"):
        parents.setdefault(child, set()).add(parent)
    assert all(len(p) == 2 for p in parents.values())
    siblings = {(a, b) for a in parents for b in parents if a != b and parents[a] == parents[b]}
    assert _facts(family, "sibling_of") == siblings


def test_family_split_is_deterministic_disjoint_and_covers_entities(family: KnowledgeGraph) -> None:
    again = family_graph(num_families=15, seed=0)
    assert torch.equal(family.test, again.test) and family.entities == again.entities
    assert not torch.equal(family.test, family_graph(num_families=15, seed=1).test)
    train, valid, test = ({tuple(t) for t in s.tolist()} for s in (family.train, family.valid, family.test))
    assert not train & valid and not train & test and not valid & test
    assert len(valid) == len(test) == int(0.1 * len(family.all_triples()))


@pytest.mark.parametrize("held_out", [0.1, 0.4])
def test_family_split_leaves_every_entity_in_train(held_out: float) -> None:
    kg = family_graph(num_families=15, seed=0, held_out=held_out)
    assert len(kg.test) > 0.9 * held_out * len(kg.all_triples())
    assert set(kg.train[:, [0, 2]].flatten().tolist()) == set(range(kg.num_entities))


def test_family_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_families"):
        family_graph(num_families=0)
    with pytest.raises(ValueError, match="held_out"):
        family_graph(held_out=0.6)
