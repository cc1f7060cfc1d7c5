"""Speech from espeak-ng: synthesis with phoneme alignment, acoustic features and a cached corpus.

- :mod:`~reprobook.data.speech.espeak`: :func:`synthesize` text into an :class:`Utterance`
  (22.05 kHz waveform plus phoneme segments that tile it).
- :mod:`~reprobook.data.speech.features`: :func:`log_mel`, :func:`frame_pitch`, :func:`frame_energy`
  and :func:`durations_in_frames`, all on the FastSpeech 2 frame grid (hop 256, centred frames).
- :mod:`~reprobook.data.speech.corpus`: :func:`build_corpus`, template sentences with numbers
  spelled out by ``num2words``, featurised and cached on disk.
"""

from __future__ import annotations

from reprobook.data.speech.corpus import Example, SpeechCorpus, build_corpus, default_cache_dir
from reprobook.data.speech.espeak import PAUSE, SAMPLE_RATE, VOICES, Utterance, synthesize
from reprobook.data.speech.features import (
    HOP_LENGTH,
    N_MELS,
    durations_in_frames,
    frame_energy,
    frame_pitch,
    log_mel,
    frame_count,
)

__all__ = [
    "HOP_LENGTH",
    "N_MELS",
    "PAUSE",
    "SAMPLE_RATE",
    "VOICES",
    "Example",
    "SpeechCorpus",
    "Utterance",
    "build_corpus",
    "default_cache_dir",
    "durations_in_frames",
    "frame_count",
    "frame_energy",
    "frame_pitch",
    "log_mel",
    "synthesize",
]
