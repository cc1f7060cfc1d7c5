"""Building blocks shared by the methods: invertible layers, the Transformer, and model utilities.

* :mod:`~reprobook.nn.invertible` -- Haar transform and affine coupling (IRN, ILC);
* :mod:`~reprobook.nn.transformer` -- attention, FFT blocks, encoder-decoder, decoding (FastSpeech 2, MAT, ...);
* :func:`count_parameters` and :func:`eval_mode` (:mod:`~reprobook.nn.utils`).
"""

from __future__ import annotations

from reprobook.nn.utils import count_parameters, eval_mode, model_device

__all__ = ["count_parameters", "eval_mode", "model_device"]
