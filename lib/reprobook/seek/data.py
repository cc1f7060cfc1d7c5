"""The graphs SEEK trains on: pykeen's small benchmarks, the synthetic family graph, and FB15k-237 on request.

:func:`load_data` returns a :class:`~reprobook.data.kg.KnowledgeGraph` for ``config.dataset``:

* ``"nations"``, ``"umls"``, ``"kinships"``: read from the files inside the installed pykeen package
  (:func:`reprobook.data.kg.load_kg`; no network, no pykeen import);
* ``"family"``: the synthetic family graph with known relation patterns, 20 families, seed 0
  (:func:`reprobook.data.kg.family_graph`), the one the chapter studies;
* ``"fb15k237"``: FB15k-237 through ``pykeen.datasets``, which downloads it on first use; it therefore
  needs ``REPROBOOK_ALLOW_DOWNLOAD=1`` (:mod:`reprobook.data.download`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reprobook.data.download import ALLOW_ENV, DownloadNotAllowedError, download_allowed
from reprobook.data.kg import DATASETS as SHIPPED
from reprobook.data.kg import KnowledgeGraph, family_graph, load_kg

if TYPE_CHECKING:
    from reprobook.seek.train import SEEKConfig

DATASETS = (*SHIPPED, "family", "fb15k237")


def load_data(config: SEEKConfig) -> KnowledgeGraph:
    """The graph ``config.dataset`` names (module docstring); only ``"fb15k237"`` may touch the network."""
    if config.dataset == "family":
        return family_graph(num_families=20, seed=0)
    if config.dataset == "fb15k237":
        return knowledge_graph_from_pykeen("FB15k237")
    return load_kg(config.dataset)


def knowledge_graph_from_pykeen(name: str) -> KnowledgeGraph:
    """A dataset of ``pykeen.datasets`` (``"FB15k237"``, ``"WN18RR"``, ``"Nations"``, ...) as a :class:`KnowledgeGraph`.

    Datasets that pykeen does not ship (FB15k-237 and most others) are downloaded by pykeen into its
    own cache on first use: this needs the network (:func:`load_data` asks for consent first). Entity
    and relation ids are pykeen's (sorted names). pykeen is imported here only: the import takes seconds.
    """
    import pykeen.datasets

    shipped = issubclass(pykeen.datasets.dataset_resolver.lookup(name), pykeen.datasets.PathDataset)
    if not shipped and not download_allowed():  # every network path goes through the project's consent gate
        raise DownloadNotAllowedError(
            f"the pykeen dataset {name!r} is downloaded by pykeen on first use (into pykeen's own cache) and "
            f"needs your consent: set {ALLOW_ENV}=1"
        )
    dataset = pykeen.datasets.get_dataset(dataset=name)
    entities = tuple(sorted(dataset.entity_to_id, key=dataset.entity_to_id.__getitem__))
    relations = tuple(sorted(dataset.relation_to_id, key=dataset.relation_to_id.__getitem__))
    splits = (dataset.training, dataset.validation, dataset.testing)
    if any(split is None for split in splits):
        raise ValueError(f"pykeen dataset {name!r} has no validation split")
    train, valid, test = (split.mapped_triples.long().contiguous() for split in splits if split is not None)
    return KnowledgeGraph(name.lower(), entities, relations, train, valid, test)
