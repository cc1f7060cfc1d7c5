"""The two baselines IRN is compared with, behind the same ``downscale`` / ``upscale`` surface as :class:`IRN`.

* :class:`Bicubic`: antialiased bicubic down, 8-bit LR, bicubic up. No parameters.
* :class:`SRNet`: antialiased bicubic down, 8-bit LR, then a small learned super-resolution CNN up (EDSR-style
  residual blocks at low resolution, a pixel shuffle, and a skip from the bicubic upscale).
  :meth:`SRNet.matching` sizes it to a given parameter count, so it can be trained with the same
  parameters and budget as the IRN it is compared with (``reprobook.irn.train`` with ``IRNConfig(model="sr")``).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from reprobook._validate import check_choice, check_image_batch, check_int
from reprobook.irn.model import SCALES, bicubic_downscale, bicubic_upscale, quantize


class Bicubic:
    """Bicubic down and bicubic up (MATLAB-style antialiased kernel, 8-bit LR): the classical rescaling."""

    stochastic = False

    def __init__(self, scale: int = 2) -> None:
        self.scale = check_choice("scale", scale, SCALES)

    def downscale(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W) -> (B, 3, H/s, W/s)``, quantised to 8 bits."""
        check_image_batch("x", x, channels=3, multiple=self.scale)
        return quantize(bicubic_downscale(x, self.scale))

    def upscale(self, y: Tensor) -> Tensor:
        """``(B, 3, h, w) -> (B, 3, s h, s w)``."""
        return bicubic_upscale(y, self.scale)


class _ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SRNet(nn.Module):
    """Bicubic down + a learned upscaler: ``upscale(y) = bicubic(y) + tail(body(head(y)) + head(y))``.

    ``head``: conv 3 -> ``width``; ``body``: ``num_blocks`` residual blocks (conv-ReLU-conv) at low
    resolution; ``tail``: conv ``width`` -> ``3 s^2`` and a pixel shuffle to ``(B, 3, s h, s w)``. The tail
    starts at zero, so a fresh net is exactly the bicubic baseline (as a fresh IRN is exactly the Haar
    transform). Trained with an L1 loss on the HR image (``reprobook.irn.train`` with ``IRNConfig(model="sr")``).
    """

    stochastic = False

    def __init__(self, scale: int = 2, width: int = 48, num_blocks: int = 4) -> None:
        super().__init__()
        self.scale = check_choice("scale", scale, SCALES)
        check_int("width", width, 1)
        check_int("num_blocks", num_blocks, 0)
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(*(_ResBlock(width) for _ in range(num_blocks)))
        to_pixels = nn.Conv2d(width, 3 * scale**2, 3, padding=1)
        nn.init.zeros_(to_pixels.weight)
        if to_pixels.bias is not None:
            nn.init.zeros_(to_pixels.bias)
        self.tail = nn.Sequential(to_pixels, nn.PixelShuffle(scale))

    @staticmethod
    def num_params_for(width: int, num_blocks: int, scale: int) -> int:
        """Parameter count of ``SRNet(scale, width, num_blocks)`` without building it."""
        out = 3 * scale**2
        return (27 * width + width) + num_blocks * 2 * (9 * width**2 + width) + (9 * width * out + out)

    @classmethod
    def matching(cls, num_params: int, scale: int = 2, num_blocks: int = 4) -> SRNet:
        """The ``SRNet`` with ``num_blocks`` blocks whose parameter count is closest to ``num_params``."""
        if num_params < cls.num_params_for(1, num_blocks, scale):
            raise ValueError(f"num_params={num_params} is too small for an SRNet with {num_blocks} blocks")
        # 18 n w^2 + (28 + 2 n + 27 s^2) w + 3 s^2 = num_params; solve for w, then check the neighbours.
        a, b, c = 18 * num_blocks, 28 + 2 * num_blocks + 27 * scale**2, 3 * scale**2 - num_params
        guess = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a) if a else -c / b
        candidates = [w for w in (math.floor(guess), math.ceil(guess)) if w >= 1]
        width = min(candidates, key=lambda w: abs(cls.num_params_for(w, num_blocks, scale) - num_params))
        return cls(scale, width, num_blocks)

    def forward(self, y: Tensor) -> Tensor:
        """``(B, 3, h, w) -> (B, 3, s h, s w)``: the super-resolved image (unclamped)."""
        check_image_batch("y", y, channels=3)
        features = self.head(y)
        out: Tensor = bicubic_upscale(y, self.scale) + self.tail(self.body(features) + features)
        return out

    def downscale(self, x: Tensor) -> Tensor:
        """The fixed downscaler: antialiased bicubic, quantised to 8 bits."""
        check_image_batch("x", x, channels=3, multiple=self.scale)
        return quantize(bicubic_downscale(x, self.scale))

    def upscale(self, y: Tensor) -> Tensor:
        """The learned upscaler, ``self(y)``."""
        out: Tensor = self(y)
        return out
