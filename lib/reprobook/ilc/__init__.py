"""Yaolong Wang, Mingqing Xiao, Chang Liu, Shuxin Zheng and Tie-Yan Liu, "Modeling Lost Information in Lossy Image
Compression", arXiv 2006.11999 (2020), https://arxiv.org/abs/2006.11999; no official code located. Re-implemented
for the book's ILC chapter on CompressAI (https://github.com/InterDigitalInc/CompressAI).

The surface every method in reprobook shares (``reprobook/METHODS.md``)::

    config = ILCConfig(lmbda=0.013)                   # one run: ILC at one rate-distortion trade-off
    data = load_data(config)                          # ILCData: training photos, validation crops, test photos
    result = train(config, data)                      # ILCResult; the codec comes back updated, ready to code
    ae = train(replace(config, model="ae"), data)     # the auto-encoder codec: same entropy model, steps, lambda
    scores = evaluate(result.model, data)             # ILCScores: real bpp, estimated bpp, PSNR per image

* :class:`ILC` and :class:`ConvAutoencoder` (CompressAI models sharing the ``EntropyBottleneck``),
  :func:`rate_distortion_loss` (:mod:`~reprobook.ilc.model`);
* :func:`compress` / :func:`decompress`: real byte strings, ``v~`` seeded from the bytes (:mod:`~reprobook.ilc.codec`);
* :func:`evaluate` -> :class:`ILCScores`, :func:`decoding_study` (:mod:`~reprobook.ilc.evaluate`);
* JPEG and WebP through Pillow (:func:`classical_codec`, :func:`classical_curve`), :func:`bd_rate`.

The invertible blocks are :mod:`reprobook.nn.invertible` (shared with IRN); the fused Gaussian rate kernel is
:mod:`reprobook.kernels.gaussian_rate`.
"""

from __future__ import annotations

from reprobook.ilc.baselines import CODECS, classical_codec, classical_curve
from reprobook.ilc.codec import check_updated, compress, decode_latent, decompress, parse_header, seed_from_bytes
from reprobook.ilc.data import ILCData, load_data, training_batches
from reprobook.ilc.evaluate import ILCScores, decoding_study, decoding_temperature, estimated_bpp, evaluate, to_8bit
from reprobook.ilc.model import ILC, ConvAutoencoder, estimated_bits, rate_distortion_loss
from reprobook.ilc.rd import bd_psnr, bd_rate, psnr_overlap, rate_overlap
from reprobook.ilc.train import ZOO_LAMBDAS, ILCConfig, ILCResult, build_model, optimizers, train, validation_point

__all__ = [
    "CODECS",
    "ILC",
    "ZOO_LAMBDAS",
    "ConvAutoencoder",
    "ILCConfig",
    "ILCData",
    "ILCResult",
    "ILCScores",
    "bd_psnr",
    "bd_rate",
    "build_model",
    "check_updated",
    "classical_codec",
    "classical_curve",
    "compress",
    "decode_latent",
    "decoding_study",
    "decoding_temperature",
    "decompress",
    "estimated_bits",
    "estimated_bpp",
    "evaluate",
    "load_data",
    "optimizers",
    "parse_header",
    "psnr_overlap",
    "rate_distortion_loss",
    "rate_overlap",
    "seed_from_bytes",
    "to_8bit",
    "train",
    "training_batches",
    "validation_point",
]
