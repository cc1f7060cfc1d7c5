"""Yi Ren, Chenxu Hu, Xu Tan, Tao Qin, Sheng Zhao, Zhou Zhao and Tie-Yan Liu, "FastSpeech 2: Fast and High-Quality
End-to-End Text to Speech", ICLR 2021, https://arxiv.org/abs/2006.04558. No official code was released; where the
paper leaves a detail open this follows the unofficial port https://github.com/ming024/FastSpeech2 (paper v1) and,
for the CWT pitch, NATSpeech's ``fs2_orig`` (https://github.com/NATSpeech/NATSpeech, from the authors' group).
Re-implemented for the book's FastSpeech 2 chapter, with FastSpeech 2s and the FastSpeech baseline.

The surface every method in reprobook shares (``reprobook/METHODS.md``)::

    config = FastSpeech2Config()                      # one run: FastSpeech 2 on the espeak corpus
    data = load_data(config)                          # TTSData: train/valid/test utterances with their targets
    fs2 = train(config, data)                         # FastSpeech2Result; fs2.history.curve("valid_mel")
    fs = train(replace(config, model="fastspeech", pitch="none", energy=False), data)  # teacher, distillation, student
    fs2s = train(replace(config, model="fastspeech2s"), data)  # FastSpeech 2 plus the waveform decoder
    scores = evaluate(fs2.model, data)                # FastSpeech2Scores: MCD, pitch moments and DTW, energy MAE, ...

* :class:`FastSpeech2`, :class:`FastSpeech2s` (:mod:`~reprobook.fastspeech2.model`): encoder, variance adaptor
  (:mod:`~reprobook.fastspeech2.variance`: length regulator, predictors, CWT pitch), mel decoder, losses and
  :meth:`FastSpeech2.infer` with speed, pitch and energy controls; :mod:`~reprobook.fastspeech2.wave`: FastSpeech
  2s's waveform decoder, discriminator and multi-resolution STFT loss;
* :class:`TTSData` and :func:`load_data` (:mod:`~reprobook.fastspeech2.data`: the espeak corpus split by sentence,
  with pitch/energy/CWT targets; LJSpeech with ``dataset="ljspeech"``);
* :class:`FastSpeech2Config`, :func:`build_model`, :func:`train` -> :class:`FastSpeech2Result`
  (:mod:`~reprobook.fastspeech2.train`);
* :func:`evaluate` -> :class:`FastSpeech2Scores` (:mod:`~reprobook.fastspeech2.evaluate`: MCD, pitch moments and
  DTW, energy MAE, duration error; RTF), and :func:`griffin_lim` to hear mels;
* the baseline (:mod:`~reprobook.fastspeech2.baselines`): the autoregressive :class:`TransformerTTS` teacher,
  duration extraction from its attention (:func:`extract_durations`, :func:`focus_rate`) and :func:`distill`.

The shared Transformer blocks live in :mod:`reprobook.nn.transformer`, the fused variance adaptor kernel in
:mod:`reprobook.kernels.length_regulator`.
"""

from __future__ import annotations

from reprobook.data.speech.vocoder import griffin_lim
from reprobook.fastspeech2.baselines import (
    Distilled,
    TeacherConfig,
    TransformerTTS,
    distill,
    extract_durations,
    focus_rate,
)
from reprobook.fastspeech2.data import (
    Batch,
    TTSData,
    TTSItem,
    batches,
    collate,
    encode_text,
    load_data,
    split_corpus,
)
from reprobook.fastspeech2.evaluate import (
    FastSpeech2Scores,
    Synthesis,
    evaluate,
    real_time_factor,
    synthesize_items,
    validation_mel_l1,
)
from reprobook.fastspeech2.model import FastSpeech2, FastSpeech2s, Stats
from reprobook.fastspeech2.train import FastSpeech2Config, FastSpeech2Result, build_model, train
from reprobook.fastspeech2.variance import (
    cwt_decompose,
    cwt_reconstruct,
    durations_to_mel2ph,
    length_regulate,
    pitch_targets,
)
from reprobook.fastspeech2.wave import WaveConfig

__all__ = [
    "Batch",
    "Distilled",
    "FastSpeech2",
    "FastSpeech2Config",
    "FastSpeech2Result",
    "FastSpeech2Scores",
    "FastSpeech2s",
    "Stats",
    "Synthesis",
    "TTSData",
    "TTSItem",
    "TeacherConfig",
    "TransformerTTS",
    "WaveConfig",
    "batches",
    "build_model",
    "collate",
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
    "split_corpus",
    "synthesize_items",
    "train",
    "validation_mel_l1",
]
