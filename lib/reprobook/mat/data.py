"""The translation data of the MAT chapter: sentence pairs, their vocabularies and the training batches.

By default the synthetic number-phrase corpus of :func:`reprobook.data.text.parallel_corpus` (offline, French ->
English), cut to a low-resource training split like IWSLT's; ``corpus="iwslt14"`` reads the real IWSLT14 de->en
(:func:`reprobook.data.iwslt.iwslt14_corpus`, downloaded only with ``REPROBOOK_ALLOW_DOWNLOAD=1``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from reprobook._validate import check_int
from reprobook.data.iwslt import iwslt14_corpus
from reprobook.data.text import Vocabulary, pad_batch, parallel_corpus

if TYPE_CHECKING:
    from reprobook.mat.train import MATConfig


@dataclass
class TranslationData:
    """Pairs and vocabularies: ``train``, ``valid`` and ``test`` lists of ``(source, target)`` strings."""

    train: list[tuple[str, str]]
    valid: list[tuple[str, str]]
    test: list[tuple[str, str]]
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary

    def encode(self, pairs: Sequence[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(src (B, S), tgt (B, T))`` padded ids, ``tgt`` with ``<bos>`` and ``<eos>``."""
        src, _ = pad_batch([self.src_vocab.encode(s) for s, _ in pairs])
        tgt, _ = pad_batch([self.tgt_vocab.encode(t) for _, t in pairs])
        return src, tgt

    def encode_source(self, sentences: Sequence[str], strict: bool = True) -> torch.Tensor:
        """Source ids ``(B, S)``. ``strict``: ``ValueError`` naming a token the training data never had, instead
        of silently mapping it to ``<unk>``."""
        level = self.src_vocab.level
        for text in sentences if strict else ():
            tokens = text.split() if level == "word" else list(text)
            unknown = sorted({t for t in tokens if t not in self.src_vocab.tokens})
            if unknown:
                raise ValueError(f"{text!r} has tokens the {level}-level source vocabulary lacks: {unknown}")
        return pad_batch([self.src_vocab.encode(s) for s in sentences])[0]

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless encoded training batches of ``batch_size`` pairs: a fresh permutation of the training split
        (drawn from ``generator``) every epoch, its last incomplete batch left out."""
        check_int("batch_size", batch_size, 1)
        if batch_size > len(self.train):
            raise ValueError(
                f"batch_size={batch_size} is larger than the training split ({len(self.train)} pairs): "
                "not one full batch could be drawn; lower batch_size or raise train_size"
            )
        return self._epochs(batch_size, generator)

    def _epochs(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            order = torch.randperm(len(self.train), generator=generator).tolist()
            for i in range(0, len(order) - batch_size + 1, batch_size):
                yield self.encode([self.train[j] for j in order[i : i + batch_size]])


def load_data(config: MATConfig) -> TranslationData:
    """The corpus of :func:`reprobook.data.text.parallel_corpus` and vocabularies built on its training split.

    ``corpus="iwslt14"`` reads IWSLT14 de->en instead (:func:`reprobook.data.iwslt.iwslt14_corpus`, downloaded
    only with ``REPROBOOK_ALLOW_DOWNLOAD=1``) with word-level vocabularies; the language, size, seed and level
    fields then do not apply. ``train_size`` keeps only the first pairs of the training split (a low-resource
    regime with full-size valid and test splits); the vocabularies still come from the whole training split."""
    src_level, tgt_level = config.src_level, config.tgt_level
    if config.corpus == "iwslt14":
        splits, src_level, tgt_level = iwslt14_corpus(), "word", "word"
    else:
        splits = parallel_corpus(config.src_lang, config.tgt_lang, size=config.corpus_size, seed=config.corpus_seed)
    train = splits.train if config.train_size is None else splits.train[: config.train_size]
    return TranslationData(
        train,
        splits.valid,
        splits.test,
        Vocabulary.build((s for s, _ in splits.train), src_level, config.vocab_min_freq),
        Vocabulary.build((t for _, t in splits.train), tgt_level, config.vocab_min_freq),
    )
