"""The three toy tasks of the chapter, from the book's own generators, and their batches.

* ``nmt``: French -> English number sentences from :mod:`reprobook.data.text` ("j'ai deux cent trente-quatre
  chats" -> "I have two hundred and thirty-four cats"), word tokens. The English side is **multi-modal**: the
  number is written in one of up to four equally valid ways, drawn at random per sentence ("two hundred and
  thirty-four", "two hundred thirty-four", "two hundred and thirty four", "two hundred thirty four"), so a
  model that emits all words at once can mix two renderings, and knowledge distillation has something to simplify.
* ``asr``: English espeak speech (:func:`reprobook.data.speech.build_corpus`) -> espeak phonemes. The log-mel is
  normalised per bin with training statistics and ``config.stack`` frames (default 4) are stacked into one source
  vector (``4 x 80 = 320`` features, about 21 vectors a second).
* ``tts``: the reverse, phonemes -> log-mel frames, the targets downsampled by averaging ``config.stack`` frames.

Every item carries ``align``: the known source-target alignment ``(N, M)``, each row a distribution over the
source. TTS: the share of each downsampled frame covered by each phoneme's espeak duration. NMT: a soft monotone
(diagonal) alignment, ``A_ij ∝ exp(-((i+½)/N - (j+½)/M)² / (2·0.1²))``; number phrases are close to monotone
between French and English. ASR: the same soft diagonal (unused by the chapter).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import torch
from num2words import num2words

from reprobook._validate import check_choice
from reprobook.data.speech import Example, build_corpus
from reprobook.data.text import NUM_TEMPLATES, SPECIALS, Vocabulary, numbers, sentence

if TYPE_CHECKING:
    from reprobook.comma.train import CoMMAConfig

TASKS = ("nmt", "asr", "tts")
MASK = "<mask>"
STACK = 4
"""The default number of frames stacked (ASR source) or averaged (TTS target) into one position."""
DIAGONAL_WIDTH = 0.1


@dataclass(frozen=True)
class Item:
    """One pair. ``src``: ``(M,)`` ids or ``(M, 320)`` features; ``tgt``: ``(N,)`` ids (no ``<bos>``/``<eos>``)
    or ``(N, 80)`` frames; ``align``: ``(N, M)`` rows summing to one; ``refs``: every valid target text."""

    src: torch.Tensor
    tgt: torch.Tensor
    align: torch.Tensor
    refs: tuple[str, ...]


@dataclass
class CoMMAData:
    """Train/valid/test items of one task, and the vocabularies (``None`` where that side is frames)."""

    task: str
    train: list[Item]
    valid: list[Item]
    test: list[Item]
    src_vocab: Vocabulary | None
    tgt_vocab: Vocabulary | None
    src_dim: int
    tgt_dim: int

    @property
    def tokens_out(self) -> bool:
        """Whether the targets are tokens (NMT, ASR) rather than frames (TTS)."""
        return self.tgt_vocab is not None

    @property
    def mask_id(self) -> int:
        """The id of ``<mask>`` in the target vocabulary (token tasks)."""
        if self.tgt_vocab is None:
            raise ValueError("the TTS targets are frames: masked frames use a learnt vector, not a token")
        return len(self.tgt_vocab) - 1

    def split(self, name: str) -> list[Item]:
        return getattr(self, check_choice("split", name, ("train", "valid", "test")))


def renderings(n: int) -> tuple[str, ...]:
    """The valid English spellings of ``n`` (num2words' own first): with or without "and", hyphen or space."""
    base: str = num2words(n, lang="en")
    forms = [base, base.replace(" and ", " "), base.replace("-", " "), base.replace(" and ", " ").replace("-", " ")]
    return tuple(dict.fromkeys(forms))


def diagonal_alignment(n: int, m: int) -> torch.Tensor:
    """Soft monotone alignment ``(n, m)``: a Gaussian around the diagonal per row, each row summing to one."""
    if n < 1 or m < 1:
        raise ValueError(f"source and target must be non-empty, got target length {n} and source length {m}")
    i = (torch.arange(n) + 0.5)[:, None] / n
    j = (torch.arange(m) + 0.5)[None, :] / m
    return torch.softmax(-((i - j) ** 2) / (2 * DIAGONAL_WIDTH**2), dim=1)


def duration_alignment(durations: torch.Tensor, num_frames: int, stack: int = STACK) -> torch.Tensor:
    """``(num_frames // stack, N)``: the share of each downsampled frame covered by each phoneme.

    ``durations (N,)`` in frames must sum to ``num_frames`` (the mel length); frames past the last full group of
    ``stack`` are dropped, as the mel is. Each row sums to one.
    """
    if durations.ndim != 1 or durations.numel() == 0:
        raise ValueError(f"durations must be a non-empty (N,) tensor, got shape {tuple(durations.shape)}")
    if int(durations.sum()) != num_frames:
        raise ValueError(
            f"durations sum to {int(durations.sum())} frames but the speech has {num_frames}: mismatched lengths"
        )
    groups = num_frames // stack
    if groups < 1:
        raise ValueError(f"the speech has {num_frames} frames, fewer than one group of {stack}")
    owner = torch.repeat_interleave(torch.arange(durations.numel()), durations.long())[: groups * stack]
    onehot = torch.nn.functional.one_hot(owner, durations.numel()).float()
    return onehot.view(groups, stack, -1).mean(1)


def _nmt(config: CoMMAConfig) -> CoMMAData:
    combos = [(n, t) for t in range(NUM_TEMPLATES) for n in numbers()]
    chosen = random.Random(config.seed).sample(combos, config.num_sentences)
    pick = random.Random(config.seed + 1)
    triples = []
    for n, t in chosen:
        english, forms = sentence(n, t, "en"), renderings(n)
        refs = tuple(english.replace(forms[0], form, 1) for form in forms)
        triples.append((sentence(n, t, "fr"), refs[pick.randrange(len(refs))], refs))
    held = len(triples) // 10
    parts = {"test": triples[:held], "valid": triples[held : 2 * held], "train": triples[2 * held :]}
    src_vocab = Vocabulary.build(s for s, _, _ in parts["train"])
    built = Vocabulary.build(r for _, _, refs in parts["train"] for r in refs)
    tgt_vocab = Vocabulary(tokens=(*built.tokens, MASK))

    def item(src: str, tgt: str, refs: tuple[str, ...]) -> Item:
        s = torch.tensor(src_vocab.encode(src, add_bos_eos=False))
        y = torch.tensor(tgt_vocab.encode(tgt, add_bos_eos=False))
        return Item(s, y, diagonal_alignment(len(y), len(s)), refs)

    items = {name: [item(*x) for x in rows] for name, rows in parts.items()}
    return CoMMAData("nmt", items["train"], items["valid"], items["test"], src_vocab, tgt_vocab, 0, 0)


def _speech(config: CoMMAConfig) -> CoMMAData:
    stack = config.stack
    corpus = build_corpus(config.num_utterances, "en", seed=config.seed)
    held = max(1, len(corpus) // 10)
    train_ex = corpus.examples[2 * held :]
    seen = {e.text for e in train_ex}
    valid_ex = [e for e in corpus.examples[held : 2 * held] if e.text not in seen]
    test_ex = [e for e in corpus.examples[:held] if e.text not in seen]
    mels = torch.cat([e.mel for e in train_ex], dim=1)
    mean, std = mels.mean(1, keepdim=True), mels.std(1, keepdim=True).clamp_min(1e-3)
    phones = Vocabulary(tokens=(*SPECIALS, *(s for s in corpus.vocab[1:] if s not in SPECIALS), MASK))

    def item(e: Example) -> Item:
        mel = ((e.mel - mean) / std).t()  # (T, 80)
        frames = duration_alignment(e.durations, mel.shape[0], stack)  # (T/stack, N) share of each phoneme
        groups = frames.shape[0]
        mel = mel[: groups * stack].reshape(groups, stack, -1)
        ids = torch.tensor(phones.encode(" ".join(e.phonemes), add_bos_eos=False))
        if config.task == "asr":
            return Item(mel.reshape(groups, -1), ids, diagonal_alignment(len(ids), groups), (" ".join(e.phonemes),))
        return Item(ids, mel.mean(1), frames, (e.text,))

    train, valid, test = ([item(e) for e in part] for part in (train_ex, valid_ex, test_ex))
    if config.task == "asr":
        return CoMMAData("asr", train, valid, test, None, phones, stack * mel_bins(corpus.examples), 0)
    return CoMMAData("tts", train, valid, test, phones, None, 0, mel_bins(corpus.examples))


def mel_bins(examples: Sequence[Example]) -> int:
    return int(examples[0].mel.shape[0])


def load_data(config: CoMMAConfig) -> CoMMAData:
    """The task ``config.task`` names: ``num_sentences`` NMT pairs or ``num_utterances`` espeak utterances, split
    80/10/10 (held-out sentences never occur in training)."""
    return _nmt(config) if config.task == "nmt" else _speech(config)


def with_targets(data: CoMMAData, targets: Sequence[torch.Tensor]) -> CoMMAData:
    """``data`` with the training targets replaced (distillation); alignments rebuilt for the new lengths."""
    if len(targets) != len(data.train):
        raise ValueError(f"targets has {len(targets)} sequences for {len(data.train)} training items")
    train = [replace(x, tgt=y, align=diagonal_alignment(len(y), len(x.src))) for x, y in zip(data.train, targets)]
    return replace(data, train=train)


@dataclass(frozen=True)
class Batch:
    """Padded tensors: ``src (B, M[, F])``, ``src_len (B,)``, ``tgt (B, N[, F])``, ``tgt_len (B,)``,
    ``align (B, N, M)``."""

    src: torch.Tensor
    src_len: torch.Tensor
    tgt: torch.Tensor
    tgt_len: torch.Tensor
    align: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        """The batch with every tensor on ``device``."""
        return Batch(*(getattr(self, f.name).to(device) for f in fields(self)))


def _pad(seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs])
    return torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True), lengths


def collate(items: Sequence[Item]) -> Batch:
    """Right-pad a list of items into a :class:`Batch` (padding ids are 0, padding frames zeros)."""
    if not items:
        raise ValueError("items is empty: a batch needs at least one item")
    for x in items:
        if len(x.src) == 0 or len(x.tgt) == 0:
            raise ValueError("an item has an empty source or target; every sequence needs one position at least")
    src, src_len = _pad([x.src for x in items])
    tgt, tgt_len = _pad([x.tgt for x in items])
    align = torch.zeros(len(items), int(tgt_len.max()), int(src_len.max()))
    for b, x in enumerate(items):
        align[b, : x.align.shape[0], : x.align.shape[1]] = x.align
    return Batch(src, src_len, tgt, tgt_len, align)


def batches(items: Sequence[Item], batch_size: int, seed: int) -> Iterator[Batch]:
    """Shuffled batches of ``batch_size`` items, reshuffled every epoch, forever."""
    rng = random.Random(seed)
    order = list(range(len(items)))
    while True:
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            yield collate([items[i] for i in order[start : start + batch_size]])


def chunks(items: Sequence[Item], size: int = 64) -> Iterator[Batch]:
    """Evaluation batches in order."""
    for start in range(0, len(items), size):
        yield collate(items[start : start + size])
