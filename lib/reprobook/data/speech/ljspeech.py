"""LJ Speech 1.1 (Ito & Johnson, 2017) as a FastSpeech 2 corpus, with phoneme durations from DTW against espeak.

The dataset FastSpeech 2 trains on: 13,100 clips (about 24 hours) of one woman reading non-fiction, 22,050 Hz
16-bit mono WAV, and ``metadata.csv`` with one ``id|raw text|normalized text`` line per clip. It is an opt-in
download (2.7 GB, :mod:`reprobook.data.download`); the book's own chapter uses the offline espeak corpus.

LJSpeech has no phoneme durations, so :func:`build_ljspeech_corpus` makes them: espeak speaks each clip's
normalised text, which gives the phonemes and their exact boundaries, and
:func:`~reprobook.data.speech.align.align_durations` carries those boundaries onto the recording by dynamic
time warping. Mel, pitch and energy are computed from the recording with the same functions as the espeak
corpus, so the result is the same :class:`~reprobook.data.speech.corpus.SpeechCorpus` that
:func:`~reprobook.data.speech.corpus.build_corpus` returns. Building the full set takes roughly 0.15 s per clip
on one CPU core (half an hour) and holds about 10 GB in memory (float32 waveforms and mels; the cache file is
about 6 GB); ``num_utterances`` takes the first clips only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from reprobook._validate import check_range
from reprobook.data import download as downloads
from reprobook.data.speech import corpus
from reprobook.data.speech.align import align_durations
from reprobook.data.speech.corpus import PAD, Example, SpeechCorpus
from reprobook.data.speech.espeak import PAUSE, SAMPLE_RATE, Utterance, synthesize
from reprobook.data.speech.features import N_FFT, frame_energy, frame_pitch, log_mel

CACHE_VERSION = "ljspeech-corpus-1"
"""Part of every cache key, with the espeak corpus's own version: bump it when the alignment changes."""

NUM_CLIPS = 13_100
"""Clips in LJSpeech 1.1."""


@dataclass(frozen=True)
class Recording:
    """One LJSpeech clip: ``id`` (``"LJ001-0001"``), ``text`` (the normalised transcript, numbers and
    abbreviations spelled out) and ``waveform`` ``(L,)`` float32 in ``[-1, 1]`` at 22,050 Hz."""

    id: str
    text: str
    waveform: torch.Tensor


def _dataset_folder(root: str | os.PathLike[str]) -> Path:
    """The folder holding ``metadata.csv``: ``root`` itself or ``root/LJSpeech-1.1`` (the archive's layout)."""
    for folder in (Path(root), Path(root) / "LJSpeech-1.1"):
        if (folder / "metadata.csv").is_file():
            return folder
    raise FileNotFoundError(
        f"root={str(root)!r} has no metadata.csv; expected root/metadata.csv and root/wavs/<id>.wav "
        "(or the same inside root/LJSpeech-1.1), as in the LJSpeech 1.1 archive"
    )


def _read_metadata(path: Path, num_utterances: int | None) -> list[tuple[str, str]]:
    """``(id, normalized text)`` of the first ``num_utterances`` lines of ``metadata.csv`` (all if None)."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")  # not the csv module: the transcripts contain unbalanced quotes
        if len(fields) != 3:
            raise ValueError(
                f"{path} line {number} has {len(fields)} '|'-separated fields; expected id|text|normalized text"
            )
        entries.append((fields[0], fields[2]))
        if len(entries) == num_utterances:
            break
    if num_utterances is not None and len(entries) < num_utterances:
        raise ValueError(f"num_utterances={num_utterances} is more than the {len(entries)} clips listed in {path}")
    return entries


def _read_wav(path: Path) -> torch.Tensor:
    """A 22,050 Hz 16-bit mono WAV -> ``(L,)`` float32 in ``[-1, 1]``; any other format raises ``ValueError``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; metadata.csv lists it")
    try:
        with wave.open(str(path), "rb") as handle:
            rate, channels, width = handle.getframerate(), handle.getnchannels(), handle.getsampwidth()
            pcm = handle.readframes(handle.getnframes())
    except (wave.Error, EOFError) as error:
        raise ValueError(f"{path} is not a PCM WAV file ({error}); LJSpeech 1.1 is 16-bit PCM") from error
    if (rate, channels, width) != (SAMPLE_RATE, 1, 2):
        raise ValueError(
            f"{path} is {rate} Hz, {channels} channel(s), {8 * width}-bit; "
            f"expected {SAMPLE_RATE} Hz, mono (1 channel), 16-bit, as in LJSpeech 1.1"
        )
    return torch.from_numpy(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0)


def read_ljspeech(root: str | os.PathLike[str], num_utterances: int | None = None) -> list[Recording]:
    """The clips of an extracted LJSpeech 1.1 folder, in ``metadata.csv`` order (the first ``num_utterances``).

    ``root`` holds ``metadata.csv`` and ``wavs/`` (or contains them in ``LJSpeech-1.1/``). WAVs are read with
    the standard library's :mod:`wave`; each must be 22,050 Hz, 16-bit, mono, else ``ValueError`` names the file.
    """
    if num_utterances is not None:
        check_range("num_utterances", num_utterances, 1, NUM_CLIPS)
    folder = _dataset_folder(root)
    entries = _read_metadata(folder / "metadata.csv", num_utterances)
    return [Recording(id=key, text=text, waveform=_read_wav(folder / "wavs" / f"{key}.wav")) for key, text in entries]


def _align(recording: Recording) -> tuple[Utterance, torch.Tensor, torch.Tensor] | None:
    """espeak's rendering of the clip's text, the clip's log-mel and aligned durations; None if unspeakable."""
    if recording.waveform.numel() <= N_FFT // 2:
        return None
    try:
        reference = synthesize(recording.text, voice="en")
    except ValueError:  # empty text, or text without a single phoneme
        return None
    mel = log_mel(recording.waveform)
    return reference, mel, align_durations(reference, mel)


def _build(recordings: list[Recording]) -> tuple[SpeechCorpus, list[str]]:
    """Featurise and align every recording; returns the corpus and the ids of the clips skipped."""
    drafts, skipped = [], []
    for recording in tqdm(recordings, desc="aligning LJSpeech", unit="clip"):
        aligned = _align(recording)
        if aligned is None:
            skipped.append(recording.id)
        else:
            drafts.append((recording, *aligned))
    symbols = {symbol for _, reference, _, _ in drafts for symbol in reference.phonemes}
    vocab = [PAD, PAUSE, *sorted(symbols - {PAUSE})]
    examples = [
        Example(
            text=recording.text,
            voice=reference.voice,
            rate=reference.rate,
            pitch_setting=reference.pitch,
            intonation=reference.intonation,
            phonemes=reference.phonemes,
            phoneme_ids=corpus.encode_phonemes(vocab, reference.phonemes),
            durations=durations,
            mel=mel,
            pitch=frame_pitch(recording.waveform),
            energy=frame_energy(recording.waveform),
            waveform=recording.waveform,
        )
        for recording, reference, mel, durations in drafts
    ]
    return SpeechCorpus(examples=examples, vocab=vocab), skipped


def _cache_path(folder: Path, arguments: dict[str, object]) -> Path:
    key = dict(
        arguments,
        version=CACHE_VERSION,
        features=corpus.CACHE_VERSION,  # the espeak corpus's features and synthesis, shared with this one
        espeak=importlib.metadata.version("espeakng-loader"),
    )
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return folder / "speech" / f"ljspeech-{arguments['num_utterances'] or 'all'}-{digest}.pt"


def build_ljspeech_corpus(
    num_utterances: int | None = None,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> SpeechCorpus:
    """The first ``num_utterances`` LJSpeech clips (all 13,100 if None) as a :class:`SpeechCorpus`, cached.

    Clips come from ``root`` (an extracted LJSpeech 1.1 folder, see :func:`read_ljspeech`) or, if ``root`` is
    None, from the registered archive, downloaded into ``cache_dir/ljspeech/`` only with consent
    (``download=True`` or ``REPROBOOK_ALLOW_DOWNLOAD=1``, see :mod:`reprobook.data.download`). Each example has
    espeak's phonemes for the normalised text (voice ``"en"``, default settings, which ``rate``,
    ``pitch_setting`` and ``intonation`` record), durations from
    :func:`~reprobook.data.speech.align.align_durations`, and mel, pitch, energy and waveform of the recording.
    Clips whose text espeak cannot speak are skipped, with one warning counting them. The corpus is saved in
    ``cache_dir/speech/`` (``cache_dir`` defaults to ``$REPROBOOK_DATA``, else ``~/.cache/reprobook``), named by
    a hash of ``num_utterances``, the data source (the archive's SHA-256, or ``root``'s absolute path),
    :data:`CACHE_VERSION` and the espeak build; a later call with the same arguments loads it without the data.
    """
    if num_utterances is not None:
        check_range("num_utterances", num_utterances, 1, NUM_CLIPS)
        num_utterances = int(num_utterances)
    folder = Path(cache_dir) if cache_dir is not None else downloads.cache_dir()
    source = str(downloads.REGISTRY["ljspeech"][0].sha256) if root is None else str(Path(root).resolve())
    arguments: dict[str, object] = {"num_utterances": num_utterances, "source": source}
    path = _cache_path(folder, arguments)
    if path.exists():
        return corpus.load_cached(path)
    if root is None:
        (root,) = downloads.fetch_dataset("ljspeech", download=download, cache=folder)
    built, skipped = _build(read_ljspeech(root, num_utterances))
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} LJSpeech clip(s) whose text espeak cannot speak (or too short): {skipped[:5]}",
            stacklevel=2,
        )
    corpus.save_cached(path, built, arguments)
    return built
