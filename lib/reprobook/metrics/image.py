"""Image-quality metrics as super-resolution papers report them: PSNR and SSIM, optionally on Y.

Conventions (those of EDSR, IRN and BasicSR):

* Inputs are ``(B, C, H, W)`` or ``(C, H, W)`` tensors with values in ``[0, data_range]``.
  Results are per image: shape ``(B,)``, or a 0-dim tensor for a single image; float64.
* ``crop_border=k`` ignores ``k`` pixels on every side first (papers use ``k = scale``).
* ``y_channel=True`` compares only the luma of ITU-R BT.601 (:func:`rgb_to_y`), as most SR tables do.
* PSNR of identical images is ``inf`` (no cap).
* SSIM is Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5, ``K1 = 0.01``,
  ``K2 = 0.03``, statistics over the window positions that fit inside the image ("valid"),
  averaged over positions and channels. It is implemented here in torch (a separable
  convolution) so it runs on any device; it matches
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)`` to float64 rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_BT601_WEIGHTS = (65.481, 128.553, 24.966)
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


RANGE_SLACK = 0.05
"""How far outside ``[0, data_range]`` an input may stray (an unclamped network output) before it is refused: a
0..255 image measured with ``data_range=1`` strays by a factor of 255."""


def rgb_to_y(image: Tensor) -> Tensor:
    """Luma of ITU-R BT.601: ``(..., 3, H, W)`` RGB in ``[0, 1]`` -> ``(..., 1, H, W)``.

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``, MATLAB's ``rgb2ycbcr`` on ``[0, 1]``
    inputs, the Y channel on which super-resolution papers compute PSNR and SSIM. The output lies in
    ``[16/255, 235/255]``.
    """
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(f"image must have shape (..., 3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"image must hold floats in [0, 1], got dtype {image.dtype}; convert with image.float() / 255")
    weights = torch.tensor(_BT601_WEIGHTS, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return ((image * weights).sum(dim=-3, keepdim=True) + 16.0) / 255.0


def _prepare(x: Tensor, y: Tensor, data_range: float, crop_border: int, y_channel: bool) -> tuple[Tensor, Tensor]:
    """Validate, crop, optionally convert to Y; return ``(B, C, H', W')`` float64 copies."""
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got x: {tuple(x.shape)} and y: {tuple(y.shape)}")
    if x.ndim not in (3, 4):
        raise ValueError(f"x and y must be (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    if x.numel() == 0:
        raise ValueError(f"x and y must not be empty, got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if not isinstance(crop_border, int) or crop_border < 0 or 2 * crop_border >= min(height, width):
        raise ValueError(
            f"crop_border={crop_border!r} must be an integer with 0 <= crop_border < {min(height, width) / 2} "
            f"for images of shape {tuple(x.shape)}"
        )
    for name, t in (("x", x), ("y", y)):
        low, high = float(t.min()), float(t.max())
        if low < -RANGE_SLACK * data_range or high > (1 + RANGE_SLACK) * data_range:
            raise ValueError(
                f"{name} holds values in [{low:g}, {high:g}], outside [0, data_range={data_range:g}]: "
                "pass the images' data_range (255 for 0..255 images) or rescale them"
            )
    x4, y4 = (t.unsqueeze(0) if t.ndim == 3 else t for t in (x, y))
    if crop_border:
        x4, y4 = (t[..., crop_border:-crop_border, crop_border:-crop_border] for t in (x4, y4))
    x4, y4 = x4.to(torch.float64), y4.to(torch.float64)
    if y_channel:
        x4, y4 = (rgb_to_y(t / data_range) * data_range for t in (x4, y4))
    return x4, y4


def _unbatch(values: Tensor, like: Tensor) -> Tensor:
    return values.squeeze(0) if like.ndim == 3 else values


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0, crop_border: int = 0, y_channel: bool = False) -> Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``; ``(B,)`` or 0-dim.

    The MSE averages over channels, rows and columns of each image. Identical images give ``inf``.
    """
    x4, y4 = _prepare(x, y, data_range, crop_border, y_channel)
    mse = (x4 - y4).pow(2).flatten(1).mean(dim=1)
    return _unbatch(10.0 * torch.log10(data_range**2 / mse), x)


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> Tensor:
    """The normalised 1-D Gaussian of length 11, sigma 1.5: ``(11,)``."""
    offsets = torch.arange(_SSIM_WINDOW, dtype=dtype, device=device) - (_SSIM_WINDOW - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * _SSIM_SIGMA**2))
    return weights / weights.sum()


def _blur(images: Tensor, window: Tensor) -> Tensor:
    """Separable Gaussian filtering of ``(B, C, H, W)`` per channel, valid region: ``(B, C, H-10, W-10)``."""
    channels = images.shape[1]
    rows = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = window.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    return F.conv2d(F.conv2d(images, rows, groups=channels), cols, groups=channels)


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0, crop_border: int = 0, y_channel: bool = False) -> Tensor:
    """Structural similarity (Wang et al. 2004, Eq. 13), mean over window positions and channels.

    ``SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))``
    with Gaussian-weighted local statistics, ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``,
    ``L = data_range``. Returns ``(B,)`` or 0-dim; 1.0 for identical images. After
    ``crop_border`` the images must be at least 11x11.
    """
    x4, y4 = _prepare(x, y, data_range, crop_border, y_channel)
    if min(x4.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(
            f"ssim needs images of at least {_SSIM_WINDOW}x{_SSIM_WINDOW} after crop_border, "
            f"got {tuple(x4.shape[-2:])} from x of shape {tuple(x.shape)}"
        )
    window = _gaussian_window(x4.dtype, x4.device)
    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _blur(x4, window), _blur(y4, window)
    var_x = _blur(x4 * x4, window) - mu_x**2
    var_y = _blur(y4 * y4, window) - mu_y**2
    cov_xy = _blur(x4 * y4, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return _unbatch(ssim_map.flatten(1).mean(dim=1), x)
