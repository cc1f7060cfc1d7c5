"""Mingqing Xiao, Shuxin Zheng, Chang Liu, Yaolong Wang, Di He, Guolin Ke, Jiang Bian, Zhouchen Lin and Tie-Yan Liu,
"Invertible Image Rescaling", ECCV 2020, https://arxiv.org/abs/2005.05650; official code:
https://github.com/pkuxmq/Invertible-Image-Rescaling (branch ``ECCV``). Re-implemented for the book's IRN chapter.

The surface every method in reprobook shares (``reprobook/METHODS.md``)::

    config = IRNConfig()                              # one run: IRN x2 on the book's photos
    data = load_data(config)                          # IRNData: training photos, validation crops, test photos
    result = train(config, data)                      # IRNResult; result.history.curve("val_psnr")
    sr = train(replace(config, model="sr"), data)     # the same-size SR CNN, same recipe
    scores = evaluate(result.model, data)             # IRNScores: HR PSNR/SSIM on Y over z draws, LR PSNR

* :class:`IRN` -- the model: ``forward``/``inverse``, ``downscale(x)``, ``upscale(y, z=None, temperature=1)``;
  :func:`irn_losses`, :func:`quantize` and the bicubic helpers (:mod:`~reprobook.irn.model`);
* :class:`IRNData` and :func:`load_data` (:mod:`~reprobook.irn.data`);
* :class:`IRNConfig`, :func:`build_model`, :func:`train` -> :class:`IRNResult` (:mod:`~reprobook.irn.train`);
* :func:`evaluate` -> :class:`IRNScores` and :func:`validation_psnr` (:mod:`~reprobook.irn.evaluate`);
* baselines with the same ``downscale``/``upscale`` surface: :class:`Bicubic` and :class:`SRNet`
  (``IRNConfig(model="sr")``: IRN's parameter count and budget).

Building blocks (Haar transform, coupling) live in :mod:`reprobook.nn.invertible`, the fused coupling kernel in
:mod:`reprobook.kernels.coupling`.
"""

from __future__ import annotations

from reprobook.irn.baselines import Bicubic, SRNet
from reprobook.irn.data import IRNData, load_data
from reprobook.irn.evaluate import IRNScores, Rescaler, evaluate, validation_psnr
from reprobook.irn.model import IRN, SCALES, bicubic_downscale, bicubic_upscale, irn_losses, quantize
from reprobook.irn.train import DEFAULT_LAMBDA_FIT, IRNConfig, IRNResult, build_model, train

__all__ = [
    "DEFAULT_LAMBDA_FIT",
    "IRN",
    "SCALES",
    "Bicubic",
    "IRNConfig",
    "IRNData",
    "IRNResult",
    "IRNScores",
    "Rescaler",
    "SRNet",
    "bicubic_downscale",
    "bicubic_upscale",
    "build_model",
    "evaluate",
    "irn_losses",
    "load_data",
    "quantize",
    "train",
    "validation_psnr",
]
