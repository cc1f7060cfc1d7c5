"""FastSpeech 2 and 2s (Ren, Hu, Tan, Qin, Zhao, Zhao and Liu, 2020; arXiv 2006.04558), and the FastSpeech baseline.

The surface every reprobook method shares:

* :func:`load_data` -> :class:`TTSData` (the espeak corpus split by sentence, with pitch/energy/CWT targets);
* :class:`FastSpeech2Config`, :class:`FastSpeech2` (:mod:`~reprobook.fastspeech2.model`): encoder, variance adaptor
  (:mod:`~reprobook.fastspeech2.variance`: length regulator, predictors, CWT pitch), mel decoder, losses and
  :meth:`FastSpeech2.infer` with speed, pitch and energy controls;
* the baseline (:mod:`~reprobook.fastspeech2.baseline`): an autoregressive :class:`TransformerTTS` teacher, duration
  extraction from its attention, and the distilled student;
* :mod:`~reprobook.fastspeech2.wave`: FastSpeech 2s's waveform decoder, discriminator and multi-resolution STFT loss;
* :func:`train_fastspeech2`, :func:`train_fastspeech`, :func:`train_fastspeech2s` (:mod:`~reprobook.fastspeech2.train`);
* :func:`evaluate` and :mod:`~reprobook.fastspeech2.evaluate` (MCD, pitch moments and DTW, energy MAE, duration
  error, RTF), and :func:`griffin_lim` to hear mels.
"""

from __future__ import annotations

from reprobook.fastspeech2.audio import griffin_lim
from reprobook.fastspeech2.baseline import TeacherConfig, TransformerTTS, extract_durations, focus_rate
from reprobook.fastspeech2.data import Batch, TTSData, TTSItem, batches, collate, encode_text, load_data
from reprobook.fastspeech2.evaluate import Scores, Synthesis, evaluate, real_time_factor, score, synthesize_items
from reprobook.fastspeech2.model import FastSpeech2, FastSpeech2Config, Stats
from reprobook.fastspeech2.train import (
    Distilled,
    FastSpeech2s,
    FastSpeechPipeline,
    RunResult,
    TrainConfig,
    WaveConfig,
    distill,
    stats_of,
    time_to_reach,
    train_fastspeech,
    train_fastspeech2,
    train_fastspeech2s,
    train_teacher,
    validation_mel_l1,
)
from reprobook.fastspeech2.variance import (
    cwt_decompose,
    cwt_reconstruct,
    durations_to_mel2ph,
    length_regulate,
    pitch_targets,
)
from reprobook.nn import count_parameters

__all__ = [
    "Batch",
    "Distilled",
    "FastSpeech2",
    "FastSpeech2Config",
    "FastSpeech2s",
    "FastSpeechPipeline",
    "RunResult",
    "Scores",
    "Stats",
    "Synthesis",
    "TTSData",
    "TTSItem",
    "TeacherConfig",
    "TrainConfig",
    "TransformerTTS",
    "WaveConfig",
    "batches",
    "collate",
    "count_parameters",
    "cwt_decompose",
    "cwt_reconstruct",
    "distill",
    "durations_to_mel2ph",
    "encode_text",
    "evaluate",
    "extract_durations",
    "focus_rate",
    "griffin_lim",
    "length_regulate",
    "load_data",
    "pitch_targets",
    "real_time_factor",
    "score",
    "stats_of",
    "synthesize_items",
    "time_to_reach",
    "train_fastspeech",
    "train_fastspeech2",
    "train_fastspeech2s",
    "train_teacher",
    "validation_mel_l1",
]
