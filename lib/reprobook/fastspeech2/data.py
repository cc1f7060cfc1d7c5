"""The chapter's data: the espeak corpus (or LJSpeech, opt-in), split by sentence, turned into padded training batches.

:func:`load_data` builds the corpus a :class:`~reprobook.fastspeech2.FastSpeech2Config` names and
:func:`split_corpus` splits it. Every :class:`~reprobook.data.speech.Example` becomes a :class:`TTSItem` with the
targets FastSpeech 2 trains on (Sec. 2.3 of the paper): frame-level F0 with unvoiced frames interpolated, its
per-utterance log-F0 mean and standard deviation and CWT pitch spectrogram, and the energy as ``log(1 + e)``
z-normalised with training-set statistics (pitfall 4 of the notes: raw pitch and energy MSEs would swamp the mel
loss).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from reprobook._validate import check_int
from reprobook.data.speech import Example, SpeechCorpus, build_corpus, build_ljspeech_corpus, synthesize
from reprobook.fastspeech2.variance import check_durations, pitch_targets

if TYPE_CHECKING:
    from reprobook.fastspeech2.train import FastSpeech2Config


@dataclass(frozen=True)
class TTSItem:
    """One utterance: ``phonemes (N,)``, ``durations (N,)`` summing to ``T``, ``mel (T, 80)``, ``f0 (T,)`` Hz
    interpolated, ``f0_raw (T,)`` Hz with 0 = unvoiced, ``lf0_mean``/``lf0_std`` its log-F0 statistics,
    ``cwt (T, 10)``, ``energy (T,)`` normalised, ``energy_raw (T,)``, ``waveform (L,)``."""

    text: str
    phonemes: torch.Tensor
    durations: torch.Tensor
    mel: torch.Tensor
    f0: torch.Tensor
    f0_raw: torch.Tensor
    lf0_mean: float
    lf0_std: float
    cwt: torch.Tensor
    energy: torch.Tensor
    energy_raw: torch.Tensor
    waveform: torch.Tensor


@dataclass
class TTSData:
    """Train/valid/test items (test sentences never occur in training), the vocabulary and the statistics."""

    train: list[TTSItem]
    valid: list[TTSItem]
    test: list[TTSItem]
    vocab: list[str]
    corpus: SpeechCorpus
    lf0_mean: float
    lf0_std: float
    energy_mean: float
    energy_std: float
    energy_low: float = field(default=-3.0)
    energy_high: float = field(default=3.0)


def _item(e: Example, energy_mean: float, energy_std: float) -> TTSItem:
    durations = check_durations(e.durations)
    mel = e.mel.t().contiguous()
    if int(durations.sum()) != mel.shape[0]:
        raise ValueError(f"{e.text!r}: durations sum to {int(durations.sum())} but the mel has {mel.shape[0]} frames")
    z, mean, std, cwt = pitch_targets(e.pitch)
    f0 = torch.exp(z * std + mean)
    log_energy = torch.log1p(e.energy)
    return TTSItem(
        text=e.text,
        phonemes=e.phoneme_ids,
        durations=durations,
        mel=mel,
        f0=f0.float(),
        f0_raw=e.pitch,
        lf0_mean=mean,
        lf0_std=std,
        cwt=cwt.float(),
        energy=((log_energy - energy_mean) / energy_std).float(),
        energy_raw=e.energy,
        waveform=e.waveform,
    )


def load_data(config: FastSpeech2Config, *, cache_dir: str | None = None) -> TTSData:
    """The run's corpus, split by sentence text (:func:`split_corpus`).

    ``config.dataset="espeak"`` (offline, the default): ``config.num_utterances`` template sentences synthesised
    by espeak with the corpus seed ``config.data_seed``, each with its own rate, base pitch and intonation (the
    profile's sizes: smoke 60 / 8 / 8, book 400 / 24 / 40, full 3000 / 100 / 200 utterances, total / valid / test).
    ``"ljspeech"``: the first ``config.num_utterances`` LJSpeech clips, aligned with espeak
    (:func:`~reprobook.data.speech.build_ljspeech_corpus`; the download needs ``REPROBOOK_ALLOW_DOWNLOAD=1``).
    Either corpus is built once and cached in ``cache_dir`` (default ``$REPROBOOK_DATA``, else
    ``~/.cache/reprobook``).
    """
    from reprobook.fastspeech2.train import FastSpeech2Config  # the config module imports this one

    if not isinstance(config, FastSpeech2Config):
        raise TypeError(
            f"config must be a FastSpeech2Config, got {type(config).__name__}; sizes are config fields, e.g. "
            "load_data(FastSpeech2Config(num_utterances=400))"
        )
    if config.dataset == "ljspeech":
        corpus = build_ljspeech_corpus(config.num_utterances, cache_dir=cache_dir)
    else:
        corpus = build_corpus(config.num_utterances, voice="en", seed=config.data_seed, cache_dir=cache_dir)
    return split_corpus(corpus, config.num_valid, config.num_test, config.data_seed)


def split_corpus(corpus: SpeechCorpus, num_valid: int, num_test: int, seed: int = 0) -> TTSData:
    """Split ``corpus`` by sentence text into test, valid and train (in that order, after a shuffle seeded with
    ``seed``), and compute the targets with the training set's energy and log-F0 statistics."""
    check_int("num_valid", num_valid, 1)
    check_int("num_test", num_test, 1)
    check_int("seed", seed)
    if len(corpus) - num_valid - num_test < 2:
        raise ValueError(
            f"the corpus's {len(corpus)} utterances leave too little for training after {num_valid} + {num_test} "
            "held out"
        )
    order = list(range(len(corpus)))
    random.Random(seed).shuffle(order)
    # Split by text: every copy of a sentence lands on the same side, so test sentences are never heard in training.
    by_text: dict[str, list[int]] = {}
    for i in order:
        by_text.setdefault(corpus[i].text, []).append(i)
    groups = list(by_text.values())
    test_ids: list[int] = []
    valid_ids: list[int] = []
    train_ids: list[int] = []
    for group in groups:
        target = test_ids if len(test_ids) < num_test else valid_ids if len(valid_ids) < num_valid else train_ids
        target.extend(group)
    energy = torch.cat([torch.log1p(corpus[i].energy) for i in train_ids])
    lf0 = torch.cat([torch.log(corpus[i].pitch[corpus[i].pitch > 0]) for i in train_ids])
    e_mean, e_std = float(energy.mean()), float(energy.std())
    make = lambda ids: [_item(corpus[i], e_mean, e_std) for i in ids]  # noqa: E731
    return TTSData(
        train=make(train_ids),
        valid=make(valid_ids),
        test=make(test_ids),
        vocab=corpus.vocab,
        corpus=corpus,
        lf0_mean=float(lf0.mean()),
        lf0_std=float(lf0.std()),
        energy_mean=e_mean,
        energy_std=e_std,
    )


def encode_text(data: TTSData, text: str, rate: int = 175, pitch: int = 50) -> torch.Tensor:
    """Phoneme ids ``(N,)`` of ``text`` as espeak pronounces it. ``ValueError`` for empty text, text espeak speaks
    no phoneme of, or phonemes the training corpus never had (the model has no embedding for them)."""
    utterance = synthesize(text, voice="en", rate=rate, pitch=pitch)
    return data.corpus.encode(utterance.phonemes)


@dataclass
class Batch:
    """Right-padded tensors: ``phonemes (B, N)`` (0 = pad), ``src_lengths (B,)``, ``durations (B, N)``,
    ``mel (B, T, 80)``, ``mel_lengths (B,)``, ``f0``/``energy (B, T)``, ``cwt (B, T, 10)``, ``lf0_stats (B, 2)``."""

    phonemes: torch.Tensor
    src_lengths: torch.Tensor
    durations: torch.Tensor
    mel: torch.Tensor
    mel_lengths: torch.Tensor
    f0: torch.Tensor
    energy: torch.Tensor
    cwt: torch.Tensor
    lf0_stats: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        return Batch(**{k: v.to(device) for k, v in self.__dict__.items()})


def _pad(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(list(tensors), batch_first=True)


def collate(
    items: Sequence[TTSItem],
    mels: Sequence[torch.Tensor] | None = None,
    durations: Sequence[torch.Tensor] | None = None,
) -> Batch:
    """Pad ``items`` into a :class:`Batch`; ``mels``/``durations`` replace the targets (FastSpeech's distilled
    mels and teacher durations). Replacement mels must have as many frames as their durations sum to."""
    if not items:
        raise ValueError("items must contain at least one TTSItem")
    mel_list = list(mels) if mels is not None else [i.mel for i in items]
    dur_list = list(durations) if durations is not None else [i.durations for i in items]
    for item, mel, dur in zip(items, mel_list, dur_list):
        if mel.shape[0] != int(dur.sum()) or mel.shape[0] != item.mel.shape[0] or dur.numel() != item.phonemes.numel():
            raise ValueError(
                f"{item.text!r}: mel has {mel.shape[0]} frames, durations sum to {int(dur.sum())} over {dur.numel()} "
                f"phonemes, the item has {item.mel.shape[0]} frames and {item.phonemes.numel()} phonemes; "
                "they must agree"
            )
    return Batch(
        phonemes=_pad([i.phonemes for i in items]),
        src_lengths=torch.tensor([i.phonemes.numel() for i in items]),
        durations=_pad(dur_list),
        mel=_pad(mel_list),
        mel_lengths=torch.tensor([m.shape[0] for m in mel_list]),
        f0=_pad([i.f0 for i in items]),
        energy=_pad([i.energy for i in items]),
        cwt=_pad([i.cwt for i in items]),
        lf0_stats=torch.tensor([[i.lf0_mean, i.lf0_std] for i in items]),
    )


def batch_indices(lengths: Sequence[int], batch_size: int, seed: int = 0, pool: int = 8) -> Iterator[list[int]]:
    """Index batches forever, bucketed by length (the usual TTS recipe): each epoch is shuffled, cut into pools
    of ``pool`` batches' worth, each pool sorted by length and cut into batches, and the batches shuffled. A
    batch then pads little (on this corpus about 20 % less compute than random batches); items left over in a
    pool wait for the next epoch's draw."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    size = min(batch_size, len(order))
    while True:
        rng.shuffle(order)
        chunks = []
        for first in range(0, len(order), pool * size):
            group = sorted(order[first : first + pool * size], key=lambda i: lengths[i])
            chunks += [group[s : s + size] for s in range(0, len(group) - size + 1, size)]
        rng.shuffle(chunks)
        yield from chunks


def batches(
    items: Sequence[TTSItem], batch_size: int, seed: int = 0, **replace: Sequence[torch.Tensor]
) -> Iterator[Batch]:
    """Length-bucketed :class:`Batch` es forever (:func:`batch_indices`), for :func:`reprobook.train.fit`;
    ``replace`` as in :func:`collate`, aligned with ``items``."""
    for ids in batch_indices([i.mel.shape[0] for i in items], batch_size, seed):
        extra = {k: [v[i] for i in ids] for k, v in replace.items()}
        yield collate([items[i] for i in ids], **extra)
