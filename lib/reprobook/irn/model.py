"""The Invertible Rescaling Net (IRN, Xiao et al., ECCV 2020): model, quantisation, bicubic helpers, losses.

The network ``f`` is one invertible map ``(B, 3, H, W) -> (B, 3 s^2, H/s, W/s)`` built from
:mod:`reprobook.nn.invertible`: ``log2(s)`` levels of a Haar transform followed by ``K`` coupling blocks.
The first 3 output channels are the low-resolution image ``y``, the other ``3 (s^2 - 1)`` the latent ``z``.

* Downscaling: ``y = Q(f(x)[:, :3])``, an 8-bit image (``Q`` rounds to 1/255; straight-through gradient).
* Upscaling: ``x_hat = f^-1([y, z~])`` with a fresh ``z~ ~ N(0, I)``: the stored ``z`` is thrown away.

Training minimises the paper's three terms with the official code's weights and reductions (sums over
pixels, mean over the batch), see :func:`irn_losses`::

    L = lambda_fit * sum (y - bicubic(x))^2          LR guidance, on the unquantised y
      + lambda_rec * sum sqrt((x - x_hat)^2 + 1e-6)  HR reconstruction (Charbonnier), x_hat from Q(y) and z~
      + lambda_distr * sum z^2                       distribution matching (Gaussian NLL up to a constant)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprobook._validate import check_choice, check_image_batch
from reprobook.nn.invertible import OFFICIAL_INIT_SCALE, InvertibleSequential, dense_subnet, haar_coupling_stack

SCALES = (2, 4)
"""Rescaling factors IRN supports here: one Haar level per factor of 2."""

CHARBONNIER_EPS = 1e-6


def quantize(y: Tensor) -> Tensor:
    """8-bit quantisation with a straight-through gradient: ``round(255 clamp(y, 0, 1)) / 255`` forward,
    identity backward (even where the clamp is active), as in the official ``Quantization`` module."""
    return y + (torch.round(y.clamp(0, 1) * 255) / 255 - y).detach()


def bicubic_downscale(x: Tensor, scale: int) -> Tensor:
    """Antialiased bicubic downscaling ``(B, C, H, W) -> (B, C, H/s, W/s)``, unquantised.

    ``antialias=True`` widens the cubic kernel by the scale and uses Keys' kernel with ``a = -0.5``, as
    MATLAB's ``imresize`` does (PyTorch's plain bicubic uses ``a = -0.75`` and aliases when shrinking). It
    is the LR guidance target of IRN and the downscaler of the bicubic baselines.
    """
    height, width = x.shape[-2:]
    return F.interpolate(x, size=(height // scale, width // scale), mode="bicubic", antialias=True, align_corners=False)


def bicubic_upscale(y: Tensor, scale: int) -> Tensor:
    """Bicubic upscaling ``(B, C, h, w) -> (B, C, s h, s w)`` with the same kernel as :func:`bicubic_downscale`."""
    height, width = y.shape[-2:]
    return F.interpolate(y, size=(height * scale, width * scale), mode="bicubic", antialias=True, align_corners=False)


class IRN(nn.Module):
    """Invertible Rescaling Net for ``scale`` in ``(2, 4)``: ``log2(scale)`` x (Haar + ``blocks_per_level`` InvBlocks).

    Each InvBlock couples the first 3 channels (the LR branch) with the rest, using three
    :class:`~reprobook.nn.invertible.DenseSubnet` of ``depth`` convs and growth ``growth`` (5 and 32 in the
    official code: 1.66 M parameters at x2, 4.35 M at x4, with 8 blocks per level). ``clamp`` bounds each
    block's log-scale (1 in the paper). ``init_scale`` multiplies the Xavier-normal initialisation of the
    subnets' hidden convs (0.1 in the official code; their last convs start at zero, so a fresh IRN is the Haar
    transform); ``None`` keeps PyTorch's default initialisation of every conv. The defaults are the official
    architecture.

    Shapes: ``forward(x)``: ``(B, 3, H, W) -> (B, 3 s^2, H/s, W/s)``; ``inverse`` the reverse map.
    """

    stochastic = True

    def __init__(
        self,
        scale: int = 2,
        blocks_per_level: int = 8,
        growth: int = 32,
        depth: int = 5,
        clamp: float = 1.0,
        init_scale: float | None = OFFICIAL_INIT_SCALE,
    ) -> None:
        super().__init__()
        check_choice("scale", scale, SCALES)
        self.scale = scale
        self.net: InvertibleSequential = haar_coupling_stack(
            in_channels=3,
            levels=int(math.log2(scale)),
            blocks=blocks_per_level,
            split=3,
            subnet=dense_subnet(growth, depth, init_scale),
            clamp=clamp,
        )

    @property
    def z_channels(self) -> int:
        """Channels of the latent ``z``: ``3 (s^2 - 1)`` (9 at x2, 45 at x4)."""
        return 3 * (self.scale**2 - 1)

    def forward(self, x: Tensor) -> Tensor:
        """``f(x)``: ``(B, 3, H, W) -> (B, 3 s^2, H/s, W/s)``; channels ``[:3]`` are ``y``, ``[3:]`` are ``z``."""
        check_image_batch("x", x, channels=3, multiple=self.scale)
        out: Tensor = self.net(x)
        return out

    def inverse(self, yz: Tensor) -> Tensor:
        """``f^-1``: ``(B, 3 s^2, h, w) -> (B, 3, s h, s w)``; exact inverse of :meth:`forward`."""
        check_image_batch("yz", yz, channels=3 * self.scale**2)
        out: Tensor = self.net(yz, reverse=True)
        return out

    def downscale(self, x: Tensor) -> Tensor:
        """The 8-bit LR image ``Q(y)``: ``(B, 3, H, W) -> (B, 3, H/s, W/s)`` in ``[0, 1]``."""
        return quantize(self(x)[:, :3])

    def sample_z(self, y: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """``z~ ~ N(0, temperature^2 I)`` of shape ``(B, 3 (s^2 - 1), h, w)`` for the LR batch ``y``."""
        shape = (y.shape[0], self.z_channels, *y.shape[-2:])
        noise = torch.randn(shape, generator=generator, device=generator.device if generator else y.device)
        return temperature * noise.to(device=y.device, dtype=y.dtype)

    def upscale(
        self, y: Tensor, z: Tensor | None = None, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """``f^-1([y, z])``: ``(B, 3, h, w) -> (B, 3, s h, s w)``, unclamped.

        ``z`` defaults to a fresh draw from ``N(0, temperature^2 I)`` (``temperature=0`` decodes with
        ``z = 0``). Only LR images made by :meth:`downscale` make sense here: IRN is not a super-resolution
        model, and a bicubic LR image decodes badly.
        """
        check_image_batch("y", y, channels=3)
        if z is None:
            z = self.sample_z(y, temperature, generator)
        elif z.shape != (y.shape[0], self.z_channels, *y.shape[-2:]):
            raise ValueError(
                f"z must have shape {(y.shape[0], self.z_channels, *y.shape[-2:])} for y of shape {tuple(y.shape)}, "
                f"got {tuple(z.shape)}"
            )
        return self.inverse(torch.cat([y, z], dim=1))


def irn_losses(
    model: IRN,
    x: Tensor,
    *,
    lambda_fit: float,
    lambda_rec: float = 1.0,
    lambda_distr: float = 1.0,
    quantize_lr: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The three IRN losses on an HR batch ``x: (B, 3, H, W)``, weighted, plus their sum under ``"loss"``.

    * ``guide``: ``lambda_fit * sum (y - bicubic(x))^2 / B`` on the unquantised ``y`` (LR guidance);
    * ``recon``: ``lambda_rec * sum sqrt((x - f^-1([Q(y), z~]))^2 + eps) / B`` with a *fresh*
      ``z~ ~ N(0, I)`` (HR reconstruction; ``quantize_lr=False`` skips ``Q``, an ablation);
    * ``distr``: ``lambda_distr * sum z^2 / B`` (distribution matching: the Gaussian NLL of ``z`` up to a
      constant, the official code's surrogate for the paper's divergence between distributions).
    """
    batch = x.shape[0]
    out = model(x)
    y, z = out[:, :3], out[:, 3:]
    guide = lambda_fit * (y - bicubic_downscale(x, model.scale)).pow(2).sum() / batch
    distr = lambda_distr * z.pow(2).sum() / batch
    y_lr = quantize(y) if quantize_lr else y
    x_hat = model.upscale(y_lr, generator=generator)
    recon = lambda_rec * torch.sqrt((x - x_hat).pow(2) + CHARBONNIER_EPS).sum() / batch
    return {"loss": guide + recon + distr, "guide": guide, "recon": recon, "distr": distr}
