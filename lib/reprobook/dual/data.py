"""The synthetic lexicon world of level 2: concepts, three languages that name them, and small seed dictionaries.

``K`` concepts have latent vectors ``c_k ~ N(0, I_d)``. Each language ``L`` names every concept with one word, and
the word's vector is a noisy linear view of the concept, ``v_{L,k} = A_L c_k + sigma eps_{L,k}`` with its own random
``A_L`` (``d_w x d``) and noise. Word ``k`` of every language means concept ``k``, so the right translation of word
``k`` is word ``k``; the translators never see ids, only vectors, so the numbering tells them nothing.

A *seed dictionary* per pair of languages lists a few concepts whose translation is known (the parallel data); every
word of every language is *monolingual* data. Half of the concepts (``test_fraction``) are in no seed dictionary:
held-out word-translation accuracy is measured on them.

With ``twin_gap`` the concepts come in **twins**, ``c_{2i+1} = c_{2i} + gap * u_i``: near-synonyms whose words every
language confuses in the same way (correlated confusions, ``m = 1``). The negative control of the chapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations, permutations
from typing import TYPE_CHECKING

import torch

from reprobook._validate import check_choice

if TYPE_CHECKING:
    from reprobook.dual.train import DualConfig

LANGUAGES = ("X", "Y", "Z")
PIVOT = "Z"
"""The third language: the pairs through it get ``pivot_seeds`` seed pairs."""


@dataclass
class Lexicon:
    """Word vectors of every language, the seed dictionaries and the held-out concepts.

    ``vectors[L]``: ``(K, d_w)`` float; ``seeds[(a, b)]``: long concept ids with a known translation between
    ``a`` and ``b`` (keys in the order of ``languages``); ``test``: long ids in no seed dictionary; ``twin``: the
    twin of every concept ``(K,)`` in the twin world, else None.
    """

    languages: tuple[str, ...]
    concepts: torch.Tensor
    vectors: dict[str, torch.Tensor]
    seeds: dict[tuple[str, str], torch.Tensor]
    test: torch.Tensor
    twin: torch.Tensor | None = None

    @property
    def num_words(self) -> int:
        return len(self.concepts)

    def check_language(self, language: str) -> str:
        """``language`` if the lexicon has it, else ``ValueError`` listing its languages."""
        return check_choice("language", language, self.languages)

    def words(self, language: str) -> torch.Tensor:
        """The word vectors ``(K, d_w)`` of ``language``."""
        return self.vectors[self.check_language(language)]

    def seed_pairs(self, source: str, target: str) -> torch.Tensor:
        """Concept ids with a known ``source``-``target`` translation (either order)."""
        self.check_language(source)
        self.check_language(target)
        if source == target:
            raise ValueError(f"source and target must be different languages, got {source!r} twice")
        key = (source, target) if (source, target) in self.seeds else (target, source)
        return self.seeds[key]

    def directions(self) -> Iterator[tuple[str, str]]:
        """Every ordered pair of languages: ``(X, Y), (X, Z), (Y, X), ...``."""
        return permutations(self.languages, 2)

    @property
    def train(self) -> torch.Tensor:
        """Concept ids in at least one seed dictionary."""
        return torch.unique(torch.cat(list(self.seeds.values())))


def build_lexicon(
    num_concepts: int,
    latent_dim: int,
    word_dim: int,
    noise: float,
    seeds_per_pair: int,
    pivot_seeds: int | None,
    test_fraction: float,
    twin_gap: float | None,
    seed: int,
) -> Lexicon:
    """Draw a lexicon (module docstring); :func:`load_data` calls it with a config's fields, which it validates."""
    generator = torch.Generator().manual_seed(seed)
    if twin_gap is None:
        concepts, twin = torch.randn(num_concepts, latent_dim, generator=generator), None
    else:
        base = torch.randn(num_concepts // 2, latent_dim, generator=generator)
        shifted = base + twin_gap * torch.randn(base.shape, generator=generator)
        concepts = torch.stack([base, shifted], 1).flatten(0, 1)  # twins at 2i and 2i + 1
        twin = torch.arange(num_concepts) ^ 1
    vectors = {}
    for language in LANGUAGES:
        view = torch.randn(word_dim, latent_dim, generator=generator) / latent_dim**0.5
        vectors[language] = concepts @ view.T + noise * torch.randn(num_concepts, word_dim, generator=generator)
    order = torch.randperm(num_concepts, generator=generator)
    num_test = round(test_fraction * num_concepts)
    test, pool = order[:num_test].sort().values, order[num_test:]
    seeds = {}
    for a, b in combinations(LANGUAGES, 2):
        count = seeds_per_pair if PIVOT not in (a, b) or pivot_seeds is None else pivot_seeds
        pick = torch.randperm(len(pool), generator=generator)[:count]
        seeds[a, b] = pool[pick].sort().values
    return Lexicon(LANGUAGES, concepts, vectors, seeds, test, twin)


def load_data(config: DualConfig) -> Lexicon:
    """The lexicon of ``config`` (its world fields and its ``seed``); offline, drawn in milliseconds."""
    return build_lexicon(
        config.num_concepts,
        config.latent_dim,
        config.word_dim,
        config.noise,
        config.seeds_per_pair,
        config.pivot_seeds,
        config.test_fraction,
        config.twin_gap,
        config.seed,
    )
