"""Evaluate any rescaler (IRN, bicubic, SR baseline) the way the IRN paper's test script does.

For each HR image ``x`` (mod-cropped to a multiple of the scale): ``y = downscale(x)`` (8-bit), then
``x_hat = upscale(y)`` clamped and rounded to 8 bits, as if saved as PNG files. Reported:

* HR PSNR and SSIM on the Y channel (ITU-R BT.601), with ``scale`` pixels cropped from each border;
* for stochastic methods (IRN) each of ``num_draws`` draws of ``z~``, so the spread over draws shows;
* LR PSNR of ``y`` against the 8-bit antialiased bicubic downscale, on Y (the convention of the HR numbers,
  no border crop) and on RGB: is the LR a normal small image?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from reprobook.data.images import crop_to_multiple
from reprobook.irn.model import bicubic_downscale, quantize
from reprobook.metrics.image import psnr, ssim


class Rescaler(Protocol):
    """What :func:`evaluate` needs: ``scale``, ``stochastic``, ``downscale(x)`` and ``upscale(y, ...)``.

    :class:`~reprobook.irn.IRN`, :class:`~reprobook.irn.Bicubic` and :class:`~reprobook.irn.SRNet` all are.
    Stochastic ones take ``upscale(y, temperature=..., generator=...)``.
    """

    scale: int
    stochastic: bool

    def downscale(self, x: Tensor) -> Tensor: ...

    def upscale(self, y: Tensor, *args: Any, **kwargs: Any) -> Tensor: ...


@dataclass
class Evaluation:
    """Per-image, per-draw metrics of one method on a set of images.

    ``hr_psnr`` and ``hr_ssim``: ``(num_draws, num_images)`` (one row for deterministic methods);
    ``lr_psnr`` (Y) and ``lr_psnr_rgb``: ``(num_images,)``, ``inf`` where the LR equals the bicubic LR.
    ``lr_images`` and ``hr_images`` keep the 8-bit outputs (first draw) for display, each ``(3, h, w)`` / ``(3, H, W)``.
    """

    method: str
    names: tuple[str, ...]
    scale: int
    hr_psnr: Tensor
    hr_ssim: Tensor
    lr_psnr: Tensor
    lr_psnr_rgb: Tensor
    lr_images: list[Tensor] = field(repr=False, default_factory=list)
    hr_images: list[Tensor] = field(repr=False, default_factory=list)

    @property
    def psnr(self) -> float:
        """HR Y-PSNR in dB, mean over images and draws."""
        return float(self.hr_psnr.mean())

    @property
    def ssim(self) -> float:
        """HR Y-SSIM, mean over images and draws."""
        return float(self.hr_ssim.mean())

    @property
    def lr(self) -> float:
        """LR Y-PSNR against the bicubic LR in dB, mean over images (``inf`` if identical)."""
        return float(self.lr_psnr.mean())

    @property
    def lr_rgb(self) -> float:
        """LR PSNR on RGB against the bicubic LR in dB, mean over images."""
        return float(self.lr_psnr_rgb.mean())

    @property
    def spread(self) -> float:
        """Max minus min over draws of the image-mean HR PSNR, in dB (0 for deterministic methods)."""
        per_draw = self.hr_psnr.mean(dim=1)
        return float(per_draw.max() - per_draw.min())

    def row(self) -> dict[str, float | str]:
        """One table row: method, HR PSNR/SSIM, LR PSNR (Y and RGB), spread over z."""
        return {
            "method": self.method,
            "HR PSNR (dB)": self.psnr,
            "HR SSIM": self.ssim,
            "LR PSNR Y (dB)": self.lr,
            "LR PSNR RGB (dB)": self.lr_rgb,
            "spread over z (dB)": self.spread,
        }


def _as_8bit(image: Tensor) -> Tensor:
    return torch.round(image.clamp(0, 1) * 255) / 255


@torch.no_grad()
def evaluate(
    method: Rescaler,
    images: Sequence[Tensor],
    *,
    names: Sequence[str] | None = None,
    label: str | None = None,
    num_draws: int = 5,
    temperature: float = 1.0,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Evaluation:
    """Downscale and upscale each ``(3, H, W)`` image in ``[0, 1]``; return PSNR/SSIM as in the IRN paper.

    ``num_draws`` draws of ``z~ ~ N(0, temperature^2 I)`` for stochastic methods (``temperature=0``: ``z = 0``,
    one draw), from a generator seeded with ``seed``. Images are mod-cropped to a multiple of the scale.
    ``device``: where to run (default: the method's parameters' device, else CPU).
    """
    if len(images) == 0:
        raise ValueError("images is empty; expected at least one (3, H, W) tensor")
    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}")
    names = tuple(names) if names is not None else tuple(f"image {i}" for i in range(len(images)))
    if len(names) != len(images):
        raise ValueError(f"names has {len(names)} entries but images has {len(images)}")
    if device is None:
        params = list(method.parameters()) if isinstance(method, torch.nn.Module) else []
        device = params[0].device if params else torch.device("cpu")
    module = method if isinstance(method, torch.nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    draws = num_draws if method.stochastic and temperature > 0 else 1
    generator = torch.Generator().manual_seed(seed)
    hr_psnr, hr_ssim = (torch.zeros(draws, len(images), dtype=torch.float64) for _ in range(2))
    lr_psnr, lr_psnr_rgb = (torch.zeros(len(images), dtype=torch.float64) for _ in range(2))
    lr_images, hr_images = [], []
    try:
        for i, image in enumerate(images):
            if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
                shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
                raise ValueError(f"images[{i}] must be a (3, H, W) tensor, got {shape}")
            x = crop_to_multiple(image, method.scale)[None].to(device)
            y = method.downscale(x)
            reference_lr = quantize(bicubic_downscale(x, method.scale))
            lr_psnr[i] = psnr(y, reference_lr, y_channel=True)[0]
            lr_psnr_rgb[i] = psnr(y, reference_lr)[0]
            lr_images.append(y[0].cpu())
            for d in range(draws):
                if method.stochastic:
                    x_hat = _as_8bit(method.upscale(y, temperature=temperature, generator=generator))
                else:
                    x_hat = _as_8bit(method.upscale(y))
                hr_psnr[d, i] = psnr(x_hat, x, crop_border=method.scale, y_channel=True)[0]
                hr_ssim[d, i] = ssim(x_hat, x, crop_border=method.scale, y_channel=True)[0]
                if d == 0:
                    hr_images.append(x_hat[0].cpu())
    finally:
        if module is not None:
            module.train(was_training)
    return Evaluation(
        method=label or type(method).__name__,
        names=names,
        scale=method.scale,
        hr_psnr=hr_psnr,
        hr_ssim=hr_ssim,
        lr_psnr=lr_psnr,
        lr_psnr_rgb=lr_psnr_rgb,
        lr_images=lr_images,
        hr_images=hr_images,
    )
