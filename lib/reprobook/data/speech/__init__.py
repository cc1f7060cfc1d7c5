"""Speech from espeak-ng: synthesis with phoneme alignment, acoustic features and a cached corpus.

- :mod:`~reprobook.data.speech.espeak`: :func:`synthesize` text into an :class:`Utterance`
  (22.05 kHz waveform plus phoneme segments that tile it).
- :mod:`~reprobook.data.speech.features`: :func:`log_mel`, :func:`frame_pitch`, :func:`frame_energy`
  and :func:`durations_in_frames`, all on the FastSpeech 2 frame grid (hop 256, centred frames).
- :mod:`~reprobook.data.speech.corpus`: :func:`build_corpus`, template sentences with numbers
  spelled out by ``num2words``, featurised and cached on disk.
- :mod:`~reprobook.data.speech.align`: :func:`align_durations`, phoneme durations for a recording by
  dynamic time warping against espeak speaking the same text.
- :mod:`~reprobook.data.speech.ljspeech`: :func:`build_ljspeech_corpus`, the opt-in LJSpeech 1.1
  download as the same kind of corpus.
- :mod:`~reprobook.data.speech.vocoder`: :func:`griffin_lim`, to hear a log-mel.
"""

from __future__ import annotations

from reprobook.data.speech.align import align_durations, cepstra, dtw_path
from reprobook.data.speech.corpus import Example, SpeechCorpus, build_corpus, default_cache_dir
from reprobook.data.speech.espeak import PAUSE, SAMPLE_RATE, VOICES, Utterance, synthesize
from reprobook.data.speech.features import (
    HOP_LENGTH,
    N_MELS,
    durations_in_frames,
    frame_count,
    frame_energy,
    frame_pitch,
    log_mel,
)
from reprobook.data.speech.ljspeech import Recording, build_ljspeech_corpus, read_ljspeech
from reprobook.data.speech.vocoder import griffin_lim

__all__ = [
    "HOP_LENGTH",
    "N_MELS",
    "PAUSE",
    "SAMPLE_RATE",
    "VOICES",
    "Example",
    "Recording",
    "SpeechCorpus",
    "Utterance",
    "align_durations",
    "build_corpus",
    "build_ljspeech_corpus",
    "cepstra",
    "default_cache_dir",
    "dtw_path",
    "durations_in_frames",
    "frame_count",
    "frame_energy",
    "frame_pitch",
    "griffin_lim",
    "log_mel",
    "read_ljspeech",
    "synthesize",
]
