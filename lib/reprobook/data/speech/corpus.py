"""A small, cached, multilingual TTS corpus: sentences with spelled-out numbers, spoken by espeak-ng.

The sentences are those of :mod:`reprobook.data.text`: each utterance draws a number
(:func:`~reprobook.data.text.numbers`) and a template, and speaks
:func:`~reprobook.data.text.sentence` in the voice's language ("I have twenty-one books",
"tengo veintiún libros"), with its own speaking rate, base pitch and intonation. The draw does not depend on the
voice, so one seed gives the same (number, template) sequence, translated, in every language.
The first call synthesises and featurises (100 utterances, about 3.5 minutes of audio, take 2 to 4 s
on two CPU cores) and saves the result under ``cache_dir/speech/`` (about 0.1 MB an utterance);
later calls with the same arguments load it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from reprobook._validate import check_choice, check_range
from reprobook.data.download import write_atomically
from reprobook.data.speech.espeak import PAUSE, VOICES, synthesize
from reprobook.data.speech.features import durations_in_frames, frame_energy, frame_pitch, log_mel
from reprobook.data.text import NUM_TEMPLATES, numbers, sentence

CACHE_VERSION = "speech-corpus-3"
"""Part of every cache key: bump it when the sentences, the synthesis or the features change."""

RATE_RANGE = (150, 210)
PITCH_RANGE = (60, 99)
INTONATION_RANGE = (20, 90)
"""Per-utterance draws (inclusive): espeak rate (wpm), base pitch and pitch range (intonation). The base
pitch stays high (median F0 of about 115 to 170 Hz): lower voices put their harmonics closer than the
80-band mel resolves, and Griffin-Lim then returns audio whose pitch cannot be measured."""

PAD = "<pad>"
"""Vocabulary entry 0, for padding batches; :data:`PAUSE` is entry 1."""


@dataclass(frozen=True)
class Example:
    """One utterance with everything a FastSpeech 2-style model trains on.

    ``N`` phonemes and ``T`` mel frames (:func:`~reprobook.data.speech.features.frame_count`):
    ``phoneme_ids``/``durations``: ``(N,)`` int64, ``durations.sum() == T``;
    ``mel``: ``(80, T)`` log-magnitude; ``pitch``: ``(T,)`` F0 in Hz (0 = unvoiced);
    ``energy``: ``(T,)``; ``waveform``: ``(L,)`` float32 at 22 050 Hz.
    ``rate``, ``pitch_setting`` and ``intonation`` are the espeak settings it was spoken with.
    """

    text: str
    voice: str
    rate: int
    pitch_setting: int
    intonation: int
    phonemes: list[str]
    phoneme_ids: torch.Tensor
    durations: torch.Tensor
    mel: torch.Tensor
    pitch: torch.Tensor
    energy: torch.Tensor
    waveform: torch.Tensor


@dataclass(frozen=True)
class SpeechCorpus:
    """A list of :class:`Example` plus the phoneme vocabulary its ``phoneme_ids`` index into.

    ``vocab`` is ``[PAD, PAUSE, *sorted(other symbols in the corpus)]``.
    """

    examples: list[Example]
    vocab: list[str]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]

    def encode(self, phonemes: Sequence[str]) -> torch.Tensor:
        """Phoneme symbols -> ``(N,)`` int64 ids; a symbol outside ``vocab`` raises ``ValueError``."""
        return encode_phonemes(self.vocab, phonemes)


def encode_phonemes(vocab: list[str], phonemes: Sequence[str]) -> torch.Tensor:
    """Phoneme symbols -> ``(N,)`` int64 ids in ``vocab``; a symbol outside it raises ``ValueError``."""
    index = {symbol: i for i, symbol in enumerate(vocab)}
    unknown = sorted({symbol for symbol in phonemes if symbol not in index})
    if unknown:
        raise ValueError(f"phonemes {unknown} are not in this corpus's vocabulary")
    return torch.tensor([index[symbol] for symbol in phonemes], dtype=torch.int64)


def default_cache_dir() -> Path:
    """``$REPROBOOK_DATA`` if set, else ``~/.cache/reprobook``."""
    return Path(os.environ.get("REPROBOOK_DATA") or Path.home() / ".cache" / "reprobook")


def _sentences(num_utterances: int, voice: str, seed: int) -> list[tuple[str, int, int, int]]:
    """``(text, rate, pitch, intonation)`` per utterance; the first ``k`` do not depend on ``num_utterances``."""
    rng = random.Random(seed)
    usable = numbers()
    drawn = []
    for _ in range(num_utterances):
        template = rng.randrange(NUM_TEMPLATES)
        number = rng.choice(usable)
        rate, pitch, intonation = rng.randint(*RATE_RANGE), rng.randint(*PITCH_RANGE), rng.randint(*INTONATION_RANGE)
        drawn.append((sentence(number, template, voice), rate, pitch, intonation))
    return drawn


def _to_plain(example: Example) -> dict[str, object]:
    """Strings, ints, lists and tensors only, so ``torch.load(weights_only=True)`` can read it back."""
    plain = {field.name: getattr(example, field.name) for field in fields(example)}
    plain["waveform"] = torch.round(example.waveform * 32768.0).to(torch.int16)  # espeak's own 16-bit PCM
    return plain


def _from_plain(plain: dict[str, Any]) -> Example:
    return Example(**dict(plain, waveform=plain["waveform"].to(torch.float32) / 32768.0))


def _cache_path(cache_dir: Path, arguments: dict[str, object]) -> Path:
    key = dict(arguments, version=CACHE_VERSION, espeak=importlib.metadata.version("espeakng-loader"))
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / "speech" / f"corpus-{arguments['voice']}-{arguments['num_utterances']}-{digest}.pt"


def _synthesize_corpus(num_utterances: int, voice: str, seed: int) -> SpeechCorpus:
    drafts = []
    for text, rate, pitch, intonation in _sentences(num_utterances, voice, seed):
        utterance = synthesize(text, voice=voice, rate=rate, pitch=pitch, intonation=intonation)
        mel = log_mel(utterance.waveform)
        drafts.append((utterance, mel, durations_in_frames(utterance, mel.shape[-1])))
    symbols = {symbol for utterance, _, _ in drafts for symbol in utterance.phonemes}
    vocab = [PAD, PAUSE, *sorted(symbols - {PAUSE})]
    examples = [
        Example(
            text=utterance.text,
            voice=voice,
            rate=utterance.rate,
            pitch_setting=utterance.pitch,
            intonation=utterance.intonation,
            phonemes=utterance.phonemes,
            phoneme_ids=encode_phonemes(vocab, utterance.phonemes),
            durations=durations,
            mel=mel,
            pitch=frame_pitch(utterance.waveform),
            energy=frame_energy(utterance.waveform),
            waveform=utterance.waveform,
        )
        for utterance, mel, durations in drafts
    ]
    return SpeechCorpus(examples=examples, vocab=vocab)


def build_corpus(
    num_utterances: int, voice: str = "en", seed: int = 0, cache_dir: str | os.PathLike[str] | None = None
) -> SpeechCorpus:
    """Synthesise ``num_utterances`` template sentences in ``voice``, or load them from the cache.

    Deterministic in ``(num_utterances, voice, seed)``. The cache file lives in
    ``cache_dir/speech/`` (``cache_dir`` defaults to :func:`default_cache_dir`), named by a hash of
    the arguments, :data:`CACHE_VERSION` and the espeak build.
    """
    check_range("num_utterances", num_utterances, 1, 100_000)
    check_choice("voice", voice, VOICES)
    arguments: dict[str, object] = {"num_utterances": int(num_utterances), "voice": voice, "seed": int(seed)}
    path = _cache_path(Path(cache_dir) if cache_dir is not None else default_cache_dir(), arguments)
    if path.exists():
        try:
            return load_cached(path)
        except ValueError as error:  # a corrupt or stale cache is rebuilt, never trusted
            warnings.warn(f"{error}; rebuilding it", stacklevel=2)
            path.unlink(missing_ok=True)
    corpus = _synthesize_corpus(int(num_utterances), voice, int(seed))
    save_cached(path, corpus, arguments)
    return corpus


def load_cached(path: Path) -> SpeechCorpus:
    """A corpus saved by :func:`save_cached`; ``ValueError`` naming the file if it is corrupt or not a corpus."""
    try:
        stored = torch.load(path, weights_only=True)
        return SpeechCorpus(examples=[_from_plain(plain) for plain in stored["examples"]], vocab=stored["vocab"])
    except Exception as error:  # unpickling, truncation, a wrong structure: all mean "not a usable corpus"
        raise ValueError(
            f"the speech-corpus cache {path} is unreadable ({type(error).__name__}); delete it to rebuild it"
        ) from None


def save_cached(path: Path, corpus: SpeechCorpus, arguments: dict[str, object]) -> None:
    """Save ``corpus`` (and the ``arguments`` that made it) to ``path`` atomically: a concurrent reader never
    sees half a file. Plain tensors, strings and numbers only, so it loads with ``weights_only=True``."""
    stored = {"arguments": arguments, "vocab": corpus.vocab, "examples": [_to_plain(e) for e in corpus.examples]}
    write_atomically(path, lambda partial: torch.save(stored, partial))
