"""load_data: the offline graphs by name, FB15k-237 only with consent."""

from __future__ import annotations

import pytest
import torch

from reprobook.data.download import DownloadNotAllowedError
from reprobook.data.kg import family_graph, load_kg
from reprobook.seek import SEEKConfig, load_data
from reprobook.seek.data import knowledge_graph_from_pykeen


@pytest.mark.parametrize("name", ["nations", "umls", "kinships"])
def test_shipped_graphs(name: str) -> None:
    graph, expected = load_data(SEEKConfig(dataset=name)), load_kg(name)
    assert graph.name == name and graph.counts() == expected.counts()
    assert torch.equal(graph.train, expected.train)


def test_family_graph_is_the_chapters() -> None:
    graph, expected = load_data(SEEKConfig(dataset="family")), family_graph(num_families=20, seed=0)
    assert graph.patterns is not None and graph.counts() == expected.counts()
    assert all(torch.equal(getattr(graph, s), getattr(expected, s)) for s in ("train", "valid", "test"))


def test_fb15k237_needs_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPROBOOK_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(DownloadNotAllowedError, match="REPROBOOK_ALLOW_DOWNLOAD=1"):
        load_data(SEEKConfig(dataset="fb15k237"))


def test_unknown_dataset_is_refused() -> None:
    with pytest.raises(ValueError, match="dataset='fb15k'"):
        SEEKConfig(dataset="fb15k")


@pytest.mark.slow
def test_pykeen_datasets_convert_to_our_graphs() -> None:
    """Nations ships inside pykeen (no download): the conversion must agree with load_kg's reading of the files."""
    converted, ours = knowledge_graph_from_pykeen("Nations"), load_kg("nations")
    assert converted.counts() == ours.counts()
    assert converted.entities == ours.entities and converted.relations == ours.relations
    assert sorted(map(tuple, converted.train.tolist())) == sorted(map(tuple, ours.train.tolist()))
