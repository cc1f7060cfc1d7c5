"""Evaluate a codec on real bitstreams: bits per pixel from the byte strings, PSNR of the decoded 8-bit images.

For every test image: ``data = compress(model, x)``, ``x_hat = decompress(model, data)`` (ILC: ``v~`` seeded from
the bytes), rounded to 8 bits as a saved PNG would be. Reported per image and on average: the real bpp
(``8 len(data) / (H W)``, header included), the likelihood estimate ``-sum log2 p(y_hat) / (H W)`` beside it, and
the RGB PSNR. :func:`decoding_study` decodes one bitstream of ILC four ways (true ``v``, fresh ``v~``, ``v = 0``,
several ``v~`` draws); :func:`decoding_temperature` decodes with another standard deviation of ``v~``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from reprobook._validate import check_float, check_int
from reprobook.ilc.codec import compress, decompress
from reprobook.ilc.data import ILCData
from reprobook.ilc.model import ILC, _Codec
from reprobook.metrics.image import psnr
from reprobook.nn import eval_mode, model_device
from reprobook.train import Scores


def to_8bit(x: Tensor) -> Tensor:
    """Clamp to ``[0, 1]`` and round to 8 bits, as saving a PNG would."""
    return (x.clamp(0, 1) * 255).round() / 255


@dataclass(kw_only=True)
class ILCScores(Scores):
    """Per-image ``bpp`` (real, from the bytes), ``bpp_estimate`` (likelihoods) and ``psnr`` (RGB, dB), each
    ``(num_images,)``; ``decoded`` keeps the decoded 8-bit images for display."""

    names: tuple[str, ...]
    bpp: Tensor
    bpp_estimate: Tensor
    psnr: Tensor
    decoded: list[Tensor] = field(repr=False, default_factory=list)

    @property
    def mean_bpp(self) -> float:
        return float(self.bpp.mean())

    @property
    def mean_psnr(self) -> float:
        return float(self.psnr.mean())

    def row(self) -> dict[str, Any]:
        return {
            "method": self.label,
            "bpp (real)": self.mean_bpp,
            "bpp (estimate)": float(self.bpp_estimate.mean()),
            "PSNR (dB)": self.mean_psnr,
        }


@contextmanager
def decoding_temperature(model: _Codec, temperature: float | None) -> Iterator[_Codec]:
    """Within the block, an ILC ``model`` draws ``v~ ~ N(0, temperature^2 I)`` (0: decodes with ``v = 0``, the
    mean); ``None``, or a codec without ``v``, changes nothing. The model's own temperature is restored on exit."""
    if temperature is None or not isinstance(model, ILC):
        yield model
        return
    own = model.temperature
    model.temperature = check_float("temperature", temperature, 0)
    try:
        yield model
    finally:
        model.temperature = own


@torch.no_grad()
def estimated_bpp(model: _Codec, x: Tensor) -> float:
    """The likelihood estimate of the rate of image ``x`` ``(3, H, W)``, bits per pixel, in eval mode."""
    with eval_mode(model):
        y, _ = model.analysis(x.unsqueeze(0).to(model_device(model)))
        _, likelihoods = model.entropy_bottleneck(y)
    return float(-torch.log2(likelihoods).sum()) / (x.shape[-2] * x.shape[-1])


@torch.no_grad()
def evaluate(
    model: _Codec, data: ILCData, split: str = "test", *, label: str = "", temperature: float | None = None
) -> ILCScores:
    """Real bpp, estimated bpp and PSNR of ``model`` on every image of ``split`` (module docs); ILC decodes at
    ``temperature`` if given (:func:`decoding_temperature`), else at its own."""
    images, names = data.split(split)
    bpp, estimate, quality, decoded = [], [], [], []
    with eval_mode(model), decoding_temperature(model, temperature):
        for x in images:
            stream = compress(model, x)
            x_hat = to_8bit(decompress(model, stream))
            bpp.append(8 * len(stream) / (x.shape[-2] * x.shape[-1]))
            estimate.append(estimated_bpp(model, x))
            quality.append(float(psnr(x_hat, x)))
            decoded.append(x_hat)
    label = label or ("ILC" if isinstance(model, ILC) else "AE codec")
    return ILCScores(
        label=label,
        names=names,
        bpp=torch.tensor(bpp),
        bpp_estimate=torch.tensor(estimate),
        psnr=torch.tensor(quality),
        decoded=decoded,
    )


@torch.no_grad()
def decoding_study(model: ILC, x: Tensor, *, draws: int = 8) -> dict[str, Any]:
    """Decode one bitstream of ``x`` ``(3, H, W)`` with the true ``v`` (oracle), ``v = 0`` and ``draws`` seeded ``v~``.

    Returns PSNRs (dB): ``oracle``, ``zero``, ``fresh`` (the bitstream's own seed), ``draws`` (a ``(draws,)``
    tensor, seeds ``0..draws-1``) and ``spread`` (max - min over the draws); ``v_std``, the standard deviation of
    the true ``v`` (1 if it follows the ``N(0, I)`` it is trained toward); and the decoded images under ``images``
    (``oracle``, ``zero``, ``fresh``).
    """
    if not isinstance(model, ILC):
        raise ValueError(f"decoding_study needs an ILC model (it has a v to replace), got {type(model).__name__}")
    check_int("draws", draws, 1)
    with eval_mode(model):
        stream = compress(model, x)
        _, v = model.analysis(x.unsqueeze(0).to(model_device(model)))
        images = {
            "oracle": to_8bit(decompress(model, stream, v=v)),
            "zero": to_8bit(decompress(model, stream, v=torch.zeros_like(v))),
            "fresh": to_8bit(decompress(model, stream)),
        }
        sampled = torch.tensor([float(psnr(to_8bit(decompress(model, stream, seed=s)), x)) for s in range(draws)])
    out: dict[str, Any] = {name: float(psnr(image, x)) for name, image in images.items()}
    out.update(draws=sampled, spread=float(sampled.max() - sampled.min()), v_std=float(v.std()), images=images)
    return out
