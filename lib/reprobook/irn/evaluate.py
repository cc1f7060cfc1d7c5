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
from torch import Tensor, nn

from reprobook._validate import check_float, check_int, describe
from reprobook.data.images import crop_to_multiple
from reprobook.irn.data import IRNData
from reprobook.irn.model import bicubic_downscale, quantize
from reprobook.metrics.image import psnr, ssim
from reprobook.nn import eval_mode
from reprobook.train import Scores

MAX_DRAWS = 1_000
"""More draws of z than this would not change the mean PSNR visibly and would take hours."""


class Rescaler(Protocol):
    """What :func:`evaluate` and :func:`validation_psnr` need: ``scale``, ``stochastic``, ``downscale(x)``,
    ``upscale(y, ...)``.

    :class:`~reprobook.irn.IRN`, :class:`~reprobook.irn.Bicubic` and :class:`~reprobook.irn.SRNet` all are.
    Stochastic ones take ``upscale(y, temperature=..., generator=...)``.
    """

    scale: int
    stochastic: bool

    def downscale(self, x: Tensor) -> Tensor: ...

    def upscale(self, y: Tensor, *args: Any, **kwargs: Any) -> Tensor: ...


@dataclass(kw_only=True)
class IRNScores(Scores):
    """Per-image, per-draw metrics of one rescaler on one split (``label`` names it in tables).

    ``hr_psnr`` and ``hr_ssim``: ``(num_draws, num_images)`` (one row for deterministic rescalers);
    ``lr_psnr`` (Y) and ``lr_psnr_rgb``: ``(num_images,)``, ``inf`` where the LR equals the bicubic LR.
    ``lr_images`` and ``hr_images`` keep the 8-bit outputs (first draw) for display, each ``(3, h, w)`` / ``(3, H, W)``.
    """

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
        """Max minus min over draws of the image-mean HR PSNR, in dB (0 for deterministic rescalers)."""
        per_draw = self.hr_psnr.mean(dim=1)
        return float(per_draw.max() - per_draw.min())

    def row(self) -> dict[str, Any]:
        """One table row: method (the label), HR PSNR/SSIM, LR PSNR (Y and RGB), spread over z."""
        return {
            "method": self.label,
            "HR PSNR (dB)": self.psnr,
            "HR SSIM": self.ssim,
            "LR PSNR Y (dB)": self.lr,
            "LR PSNR RGB (dB)": self.lr_rgb,
            "spread over z (dB)": self.spread,
        }


def _as_8bit(image: Tensor) -> Tensor:
    return torch.round(image.clamp(0, 1) * 255) / 255


def _modules(model: Rescaler) -> tuple[nn.Module, ...]:
    """``(model,)`` if it is a network (put in eval mode while it is evaluated), else ``()`` (:class:`Bicubic`)."""
    return (model,) if isinstance(model, nn.Module) else ()


def _device(model: Rescaler) -> torch.device:
    """The device of ``model``'s parameters; CPU for a rescaler without any."""
    params = list(model.parameters()) if isinstance(model, nn.Module) else []
    return params[0].device if params else torch.device("cpu")


@torch.no_grad()
def evaluate(
    model: Rescaler,
    data: IRNData,
    split: str = "test",
    *,
    label: str | None = None,
    num_draws: int = 5,
    temperature: float = 1.0,
    seed: int = 0,
) -> IRNScores:
    """Downscale and upscale each image of ``data``'s ``split``; PSNR/SSIM as in the IRN paper's test script.

    ``model``: any :class:`Rescaler` (:class:`~reprobook.irn.IRN`, :class:`~reprobook.irn.SRNet`,
    :class:`~reprobook.irn.Bicubic`), run on its parameters' device inside ``eval_mode`` (its train/eval mode is
    given back). ``num_draws`` draws of ``z~ ~ N(0, temperature^2 I)`` for stochastic rescalers (``temperature=0``:
    ``z = 0``, one draw), from a generator seeded with ``seed``, never the global one. Images are mod-cropped to a
    multiple of the scale. ``label`` names the rescaler in :meth:`IRNScores.row` (default: its class name).
    """
    images, names = data.split(split)
    check_int("num_draws", num_draws, 1, MAX_DRAWS)
    check_float("temperature", temperature, 0)
    check_int("seed", seed)
    device = _device(model)
    draws = num_draws if model.stochastic and temperature > 0 else 1
    generator = torch.Generator().manual_seed(seed)
    hr_psnr, hr_ssim = (torch.zeros(draws, len(images), dtype=torch.float64) for _ in range(2))
    lr_psnr, lr_psnr_rgb = (torch.zeros(len(images), dtype=torch.float64) for _ in range(2))
    lr_images, hr_images = [], []
    with eval_mode(*_modules(model)):
        for i, image in enumerate(images):
            if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
                raise ValueError(f"{split} image {i} must be a (3, H, W) tensor, got {describe(image)}")
            x = crop_to_multiple(image, model.scale)[None].to(device)
            y = model.downscale(x)
            reference_lr = quantize(bicubic_downscale(x, model.scale))
            lr_psnr[i] = psnr(y, reference_lr, y_channel=True)[0]
            lr_psnr_rgb[i] = psnr(y, reference_lr)[0]
            lr_images.append(y[0].cpu())
            for d in range(draws):
                if model.stochastic:
                    x_hat = _as_8bit(model.upscale(y, temperature=temperature, generator=generator))
                else:
                    x_hat = _as_8bit(model.upscale(y))
                hr_psnr[d, i] = psnr(x_hat, x, crop_border=model.scale, y_channel=True)[0]
                hr_ssim[d, i] = ssim(x_hat, x, crop_border=model.scale, y_channel=True)[0]
                if d == 0:
                    hr_images.append(x_hat[0].cpu())
    return IRNScores(
        label=label or type(model).__name__,
        names=names,
        scale=model.scale,
        hr_psnr=hr_psnr,
        hr_ssim=hr_ssim,
        lr_psnr=lr_psnr,
        lr_psnr_rgb=lr_psnr_rgb,
        lr_images=lr_images,
        hr_images=hr_images,
    )


@torch.no_grad()
def validation_psnr(model: Rescaler, images: Sequence[Tensor], seed: int = 0) -> tuple[float, float]:
    """Mean HR and LR Y-PSNR of ``model`` on ``images``, one draw of z: the cheap version of :func:`evaluate` that
    draws the validation curve during training.

    HR: ``model.upscale(model.downscale(x))`` against ``x`` (8-bit output, border = scale), z from a generator
    seeded with ``seed``. LR: the 8-bit ``model.downscale(x)`` against the 8-bit bicubic downscale (``inf`` when
    they are the same). ``images``: ``(3, H, W)`` with sides divisible by the scale. Runs inside ``eval_mode``.
    """
    if len(images) == 0:
        raise ValueError("images is empty; expected at least one (3, H, W) tensor")
    generator = torch.Generator().manual_seed(seed)
    device = _device(model)
    hr, lr = [], []
    with eval_mode(*_modules(model)):
        for image in images:
            x = image[None].to(device)
            y = model.downscale(x)
            x_hat = model.upscale(y, generator=generator) if model.stochastic else model.upscale(y)
            hr.append(float(psnr(_as_8bit(x_hat), x, crop_border=model.scale, y_channel=True)))
            lr.append(float(psnr(y, quantize(bicubic_downscale(x, model.scale)), y_channel=True)))
    return sum(hr) / len(hr), sum(lr) / len(lr)
