"""Chen Zhang, Xu Tan, Yi Ren, Tao Qin, Kejun Zhang and Tie-Yan Liu, "UWSpeech: Speech to Speech Translation for
Unwritten Languages", AAAI 2021, https://arxiv.org/abs/2006.07926. No official code located (demo page:
https://speechresearch.github.io/uwspeech/). Re-implemented for the book's UWSpeech chapter, with the VQ-VAE pipeline
and direct speech-to-speech translation as baselines; the XL-VAE loss form here is this book's choice (the paper's
exact form could not be read).

The surface every method in reprobook shares (``reprobook/METHODS.md``)::

    config = UWSpeechConfig()                           # one run: Spanish speech -> English units, XL-VAE
    data = load_data(config)                            # UWSpeechData: parallel espeak speech in five languages
    uw = train(config, data)                            # UWSpeechResult: units (converter/inverter), translator
    vq = train(replace(config, system="vqvae"), data)   # the same pipeline with lambda = 0
    direct = train(replace(config, system="direct"), data)
    scores = evaluate(uw.model, data)                   # UWSpeechScores: ASR-BLEU, WER, unit purity

* :mod:`~reprobook.uwspeech.model`: :class:`UnitModel` (converter = encoder + :class:`VectorQuantizer` with EMA
  updates and dead-code restarts; inverter; VQ-VAE and XL-VAE losses), :class:`UnitTranslator`, :class:`UWSpeech`;
* :mod:`~reprobook.uwspeech.data`: :class:`UWSpeechData`, :func:`load_data` (espeak speech, cached);
* :mod:`~reprobook.uwspeech.train`: :class:`UWSpeechConfig`, :func:`build_model`, :func:`train` ->
  :class:`UWSpeechResult`;
* :mod:`~reprobook.uwspeech.evaluate`: the evaluation :class:`Recognizer`, :func:`evaluate` ->
  :class:`UWSpeechScores` (ASR-BLEU with sacreBLEU, WER, unit purity and normalised mutual information);
* :mod:`~reprobook.uwspeech.baselines`: :class:`DirectTranslator`.

The fused nearest-code search is :func:`reprobook.kernels.vector_quantize`.
"""

from __future__ import annotations

from reprobook.uwspeech.baselines import DirectTranslator
from reprobook.uwspeech.data import UWSpeechData, load_data
from reprobook.uwspeech.evaluate import (
    Recognizer,
    UWSpeechScores,
    bleu,
    evaluate,
    frame_phonemes,
    recognizer_for,
    recognizer_scores,
    train_recognizer,
    translations,
    unit_purity,
    word_error_rate,
)
from reprobook.uwspeech.model import UnitModel, UnitTranslator, UWSpeech, VectorQuantizer, perplexity
from reprobook.uwspeech.train import UWSpeechConfig, UWSpeechResult, build_model, train

__all__ = [
    "DirectTranslator",
    "Recognizer",
    "UWSpeech",
    "UWSpeechConfig",
    "UWSpeechData",
    "UWSpeechResult",
    "UWSpeechScores",
    "UnitModel",
    "UnitTranslator",
    "VectorQuantizer",
    "bleu",
    "build_model",
    "evaluate",
    "frame_phonemes",
    "load_data",
    "perplexity",
    "recognizer_for",
    "recognizer_scores",
    "train",
    "train_recognizer",
    "translations",
    "unit_purity",
    "word_error_rate",
]
