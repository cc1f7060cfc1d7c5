"""Parallel spoken sentences in five languages from espeak-ng, featurised once per run.

One seed draws the same (number, template) sequence in every language (:func:`reprobook.data.speech.build_corpus`),
so utterance ``i`` says the same thing in Spanish (the source), English (the "unwritten" target) and the written
languages (German, French, Italian). Roles:

* ``source`` speech (log-mels) is what the systems translate;
* ``target`` speech trains the converter/inverter (reconstruction only) and gives the translator its units; its text
  is kept only for scoring (BLEU of a recogniser's transcript) and its phonemes only for the purity diagnostic;
* ``written`` languages give speech **with** phoneme sequences: the XL-VAE recognition targets;
* a disjoint block of English utterances with text trains the evaluation recogniser (``asr`` split).

Utterances are split by index: ``[0, num_asr)`` recogniser, then ``train``, ``valid`` and ``test`` (the last
``num_test``). Phoneme symbols lose espeak's stress marks (``'``, ``,``) so the languages share one inventory.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from reprobook._validate import check_choice
from reprobook.data.download import write_atomically
from reprobook.data.speech import SAMPLE_RATE, VOICES, build_corpus, default_cache_dir, log_mel
from reprobook.data.speech.corpus import CACHE_VERSION

BLANK = "<blank>"
"""Entry 0 of the shared phoneme inventory: the CTC blank."""


def strip_stress(symbol: str) -> str:
    """espeak's Kirshenbaum mnemonic without its stress prefix: ``"'aI" -> "aI"``, ``",i:" -> "i:"``."""
    return symbol.lstrip("',") or symbol


@dataclass
class Utterances:
    """One split of one language: ``mels`` ``(80, T_i)`` normalised log-mels, ``texts``, phoneme ``ids``
    (into :attr:`UWSpeechData.phonemes`) and ``durations`` in mel frames (they sum to ``T_i``)."""

    mels: list[torch.Tensor]
    texts: list[str]
    phoneme_ids: list[torch.Tensor]
    durations: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.mels)

    def subset(self, indices: Sequence[int]) -> Utterances:
        return Utterances(
            [self.mels[i] for i in indices],
            [self.texts[i] for i in indices],
            [self.phoneme_ids[i] for i in indices],
            [self.durations[i] for i in indices],
        )


@dataclass
class UWSpeechData:
    """``speech[lang][split]``: :class:`Utterances` for ``split`` in ``train``/``valid``/``test`` (all languages)
    and ``asr`` (the target language only). ``phonemes``: the shared inventory, ``BLANK`` first.
    ``mean``/``std``: the log-mel normalisation (from the training speech), to turn outputs back into log-mels.
    ``cache``: per-run objects built once (the evaluation recogniser)."""

    source: str
    target: str
    written: tuple[str, ...]
    speech: dict[str, dict[str, Utterances]]
    phonemes: list[str]
    mean: float
    std: float
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def split(self, language: str, split: str) -> Utterances:
        check_choice("language", language, sorted(self.speech))
        check_choice("split", split, sorted(self.speech[language]))
        return self.speech[language][split]

    def denormalise(self, mel: torch.Tensor) -> torch.Tensor:
        """A normalised mel back to the log-mel scale of :func:`reprobook.data.speech.log_mel`."""
        return mel * self.std + self.mean


def check_languages(source: str, target: str, written: Sequence[str]) -> None:
    """Every language must be an espeak voice; the source, target and written languages must all differ."""
    for name, lang in (("source", source), ("target", target), *(("written", w) for w in written)):
        if lang not in VOICES:
            raise ValueError(f"{name} language {lang!r} has no espeak voice here; choose from {sorted(VOICES)}")
    roles = [source, target, *written]
    if len(set(roles)) != len(roles):
        raise ValueError(f"source {source!r}, target {target!r} and written {tuple(written)} must all differ")


def make_data(
    corpora: dict[str, Any],
    source: str,
    target: str,
    written: Sequence[str],
    num_asr: int,
    num_valid: int,
    num_test: int,
) -> UWSpeechData:
    """Split parallel corpora (same seed, same length) by index and normalise their mels (see module docs)."""
    check_languages(source, target, written)
    sizes = {lang: len(c) for lang, c in corpora.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"the corpora must be parallel (same number of utterances), got {sizes}")
    total = next(iter(sizes.values()))
    num_train = total - num_asr - num_valid - num_test
    if num_train < 2:
        raise ValueError(
            f"num_utterances={total} leaves {num_train} training utterances after num_asr={num_asr}, "
            f"num_valid={num_valid} and num_test={num_test}; need at least 2"
        )
    for lang, corpus in corpora.items():
        empty = [i for i, e in enumerate(corpus.examples) if e.mel.shape[-1] < 8 or not e.phonemes]
        if empty:
            raise ValueError(f"{lang} corpus has empty utterances at {empty[:5]}: nothing to learn from")
    phonemes = [BLANK, *sorted({strip_stress(p) for c in corpora.values() for e in c.examples for p in e.phonemes})]
    index = {p: i for i, p in enumerate(phonemes)}
    train_mels = torch.cat([e.mel for c in corpora.values() for e in c.examples[num_asr : num_asr + num_train]], -1)
    mean, std = float(train_mels.mean()), float(train_mels.std())
    bounds = {
        "asr": (0, num_asr),
        "train": (num_asr, num_asr + num_train),
        "valid": (num_asr + num_train, total - num_test),
        "test": (total - num_test, total),
    }
    speech: dict[str, dict[str, Utterances]] = {}
    for lang, corpus in corpora.items():
        everything = Utterances(
            [(e.mel - mean) / std for e in corpus.examples],
            [e.text for e in corpus.examples],
            [torch.tensor([index[strip_stress(p)] for p in e.phonemes]) for e in corpus.examples],
            [e.durations for e in corpus.examples],
        )
        speech[lang] = {
            name: everything.subset(range(lo, hi))
            for name, (lo, hi) in bounds.items()
            if name != "asr" or lang == target
        }
    return UWSpeechData(source, target, tuple(written), speech, phonemes, mean, std)


@dataclass(frozen=True)
class _Spoken:
    """What this chapter keeps of a corpus example (no waveform, pitch or energy): small and quick to load."""

    text: str
    phonemes: list[str]
    mel: torch.Tensor
    durations: torch.Tensor


@dataclass(frozen=True)
class _Corpus:
    examples: list[_Spoken]

    def __len__(self) -> int:
        return len(self.examples)


def spoken_corpus(num_utterances: int, language: str, seed: int) -> _Corpus:
    """:func:`build_corpus` reduced to text, phonemes, mel (stored as float16) and durations, cached on its own
    next to the corpus (``uwspeech-*.pt``): loading it is a fraction of a second instead of reading waveforms."""
    key = json.dumps([num_utterances, language, seed, CACHE_VERSION, importlib.metadata.version("espeakng-loader")])
    path = (
        default_cache_dir()
        / "speech"
        / f"uwspeech-{language}-{num_utterances}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    )
    if path.exists():
        try:
            stored = torch.load(path, weights_only=True)
            return _Corpus([_Spoken(t, p, m.float(), d) for t, p, m, d in zip(*stored)])
        except Exception:  # a corrupt or partial file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    corpus = build_corpus(num_utterances, language, seed)
    examples = [_Spoken(e.text, e.phonemes, e.mel, e.durations) for e in corpus.examples]
    stored = (
        [e.text for e in examples], [e.phonemes for e in examples], [e.mel.half() for e in examples],
        [e.durations for e in examples],
    )  # fmt: skip
    write_atomically(path, lambda partial: torch.save(stored, partial))
    return _Corpus([_Spoken(e.text, e.phonemes, e.mel.half().float(), e.durations) for e in examples])


def load_data(config: Any) -> UWSpeechData:
    """Synthesise (or load from the cache) ``config.num_utterances`` parallel utterances in every language the
    config names, and split them (module docs). Deterministic in the config's data fields."""
    languages = [config.source, config.target, *config.written]
    check_languages(config.source, config.target, config.written)
    corpora = {lang: spoken_corpus(config.num_utterances, lang, config.data_seed) for lang in languages}
    return make_data(
        corpora, config.source, config.target, config.written, config.num_asr, config.num_valid, config.num_test
    )


def speech_features(waveform: torch.Tensor, sample_rate: int, data: UWSpeechData) -> torch.Tensor:
    """A recording ``(L,)`` -> the normalised ``(80, T)`` log-mel the systems read. ``sample_rate`` must be espeak's
    22 050 Hz (the mel filterbank and hop are set for it); resample first otherwise."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(
            f"sample_rate={sample_rate} Hz does not match the corpus's {SAMPLE_RATE} Hz; resample the recording "
            f"first, e.g. torchaudio.functional.resample(waveform, {sample_rate}, {SAMPLE_RATE})"
        )
    return (log_mel(waveform) - data.mean) / data.std


def pad_mels(mels: Sequence[torch.Tensor], multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(80, T_i)`` mels -> ``(B, T, 80)`` zero-padded (``T`` a multiple of ``multiple``) and lengths ``(B,)``."""
    lengths = torch.tensor([m.shape[-1] for m in mels])
    width = int(lengths.max())
    width = -(-width // multiple) * multiple
    batch = torch.zeros(len(mels), width, mels[0].shape[0])
    for i, m in enumerate(mels):
        batch[i, : m.shape[-1]] = m.T
    return batch, lengths
