"""What ILC is compared with: the auto-encoder codec with the same entropy model, and JPEG and WebP via Pillow.

* :class:`~reprobook.ilc.model.ConvAutoencoder` (``ILCConfig(model="ae")``): trained by the same
  :func:`~reprobook.ilc.train` with the same latent size, entropy model, steps and ``lmbda``.
* :func:`classical_codec`: one image through Pillow's JPEG or WebP encoder at one quality, with the real file
  size; :func:`classical_curve` sweeps the quality for an R-D curve.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from reprobook._validate import check_choice, check_int
from reprobook.ilc.model import ConvAutoencoder, check_image
from reprobook.metrics.image import psnr

CODECS = {"jpeg": "JPEG", "webp": "WEBP"}

__all__ = ["CODECS", "ConvAutoencoder", "classical_codec", "classical_curve"]


def classical_codec(x: Tensor, codec: str, quality: int) -> tuple[bytes, Tensor]:
    """Encode ``x`` ``(3, H, W)`` in ``[0, 1]`` (8-bit) with ``codec`` (``"jpeg"`` or ``"webp"``) at ``quality``
    (1-100); return the file's bytes and the decoded image ``(3, H, W)``."""
    check_choice("codec", codec, CODECS)
    check_int("quality", quality, 1, 100)
    check_image("x", x.unsqueeze(0) if isinstance(x, Tensor) and x.ndim == 3 else x, 1)
    array = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=CODECS[codec], quality=quality)
    data = buffer.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return data, torch.from_numpy(decoded.copy()).permute(2, 0, 1).float() / 255


def classical_curve(images: Sequence[Tensor], codec: str, qualities: Sequence[int]) -> list[dict[str, float]]:
    """Mean real bpp and mean RGB PSNR over ``images`` at each quality: ``[{"quality", "bpp", "psnr"}, ...]``."""
    rows = []
    for quality in qualities:
        bpp, quality_db = [], []
        for x in images:
            data, decoded = classical_codec(x, codec, quality)
            bpp.append(8 * len(data) / (x.shape[-2] * x.shape[-1]))
            quality_db.append(float(psnr(decoded, x)))
        rows.append({"quality": float(quality), "bpp": float(np.mean(bpp)), "psnr": float(np.mean(quality_db))})
    return rows
