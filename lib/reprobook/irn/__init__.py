"""Invertible Image Rescaling (IRN; Xiao et al., ECCV 2020), re-implemented for the book's IRN chapter.

The surface every method in reprobook shares:

* :class:`IRNConfig` -- sizes and hyperparameters, picked per profile;
* :class:`IRN` -- the model: ``forward``/``inverse``, ``downscale(x)``, ``upscale(y, z=None, temperature=1)``;
* :func:`train` -> :class:`TrainResult` (model, history, validation curve, metrics);
* :func:`evaluate` -> :class:`Evaluation` (HR PSNR/SSIM on Y over several z draws, LR PSNR).

Baselines with the same ``downscale``/``upscale`` surface: :class:`Bicubic` and :class:`SRNet`
(trained by :func:`train_sr` with IRN's parameter count and budget). Building blocks (Haar transform,
coupling) live in :mod:`reprobook.nn.invertible`, the fused coupling kernel in :mod:`reprobook.kernels.coupling`.
"""

from __future__ import annotations

from reprobook.irn.baselines import Bicubic, SRNet, num_params
from reprobook.irn.evaluation import Evaluation, Rescaler, evaluate
from reprobook.irn.model import IRN, SCALES, bicubic_downscale, bicubic_upscale, irn_losses, quantize
from reprobook.irn.training import DEFAULT_LAMBDA_FIT, IRNConfig, TrainResult, train, train_sr, validation_psnr

__all__ = [
    "DEFAULT_LAMBDA_FIT",
    "IRN",
    "SCALES",
    "Bicubic",
    "Evaluation",
    "IRNConfig",
    "Rescaler",
    "SRNet",
    "TrainResult",
    "bicubic_downscale",
    "bicubic_upscale",
    "evaluate",
    "irn_losses",
    "num_params",
    "quantize",
    "train",
    "train_sr",
    "validation_psnr",
]
