"""The two codecs of the ILC chapter, behind one surface: :class:`ILC` (invertible) and :class:`ConvAutoencoder`.

Both are CompressAI :class:`~compressai.models.CompressionModel` subclasses with the **same** entropy model, a
factorised prior (:class:`~compressai.entropy_models.EntropyBottleneck`) on an ``M``-channel latent at
``1 / 2^levels`` of the image side, so ``update()``, ``aux_loss()`` and the rANS coder are CompressAI's.
Each has ``analysis(x) -> (y, v)`` (``v`` is ``None`` for the auto-encoder), ``synthesis(y_hat, v) -> x_hat`` and
``forward(x) -> {"x_hat", "likelihoods", "y", "v"}``. :func:`rate_distortion_loss` is the training objective.

ILC (Wang et al., arXiv 2006.11999, abstract): one invertible network ``f(x) = (y, v)``; ``y`` is quantised and
coded, ``v`` is not stored and is pushed toward ``N(0, I)``; decoding runs ``f^-1(y_hat, v~)`` with ``v~ ~ N(0, I)``.
The paper's method section could not be read: the architecture below (Haar + affine couplings, IRN's blocks from
:mod:`reprobook.nn.invertible`) and the loss weights are a reconstruction, labelled as such in the chapter.
"""

from __future__ import annotations

import math

import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN
from compressai.models import CompressionModel
from torch import Tensor, nn

from reprobook._validate import check_float, check_image_batch, check_int
from reprobook.nn.invertible import AffineCoupling, HaarDownsampling, InvertibleSequential, dense_subnet


def check_image(argument: str, x: Tensor, multiple: int) -> None:
    """``ValueError`` unless ``x`` is a float ``(B, 3, H, W)`` batch in ``[0, 1]`` with ``H, W`` divisible by
    ``multiple`` (the codec's total downsampling)."""
    check_image_batch(argument, x, channels=3, multiple=multiple)
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError(
            f"{argument} must hold values in [0, 1], got min {float(x.min()):.3g}, max {float(x.max()):.3g}"
        )


class _Codec(CompressionModel):
    """Shared plumbing: the entropy bottleneck on ``y``, the forward pass, and the downsampling factor."""

    latent_channels: int
    factor: int
    stochastic: bool = False

    def analysis(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def synthesis(self, y_hat: Tensor, v: Tensor | None = None, *, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> dict[str, object]:
        """``x -> y -> y~ (noise in training, rounding around the medians in eval) -> x_hat``."""
        check_image("x", x, self.factor)
        y, v = self.analysis(x)
        y_tilde, likelihoods = self.entropy_bottleneck(y)
        x_hat = self.synthesis(y_tilde)
        return {"x_hat": x_hat, "likelihoods": {"y": likelihoods}, "y": y, "v": v}


class ILC(_Codec):
    """Invertible lossy compression: ``levels`` x (Haar + ``blocks`` affine couplings), split into ``y`` and ``v``.

    After ``levels`` Haar levels the image ``(B, 3, H, W)`` is ``(B, 3 * 4^levels, H / 2^levels, W / 2^levels)``;
    the first ``latent_channels`` channels are ``y`` (coded), the rest ``v`` (not stored). Couplings at level
    ``l`` split off the first ``3 * 4^(l-1)`` channels, except on the last level, where they split at
    ``latent_channels``, so the last couplings exchange information exactly between ``y`` and ``v``.
    ``y`` is multiplied by a learned per-channel gain (``exp(log_gain)``, an invertible scaling) before the
    quantiser: the Haar bands live in ``[-1, 1]`` and rounding to integers would erase them otherwise.
    ``v`` gets a learned per-channel gain too (``exp(log_vgain)``), fitted by maximum likelihood under
    ``N(0, I)`` (:func:`rate_distortion_loss`), so ``v`` is pushed to unit variance, not to zero, and a draw
    ``v~ ~ N(0, I)`` has the scale of the true ``v``. ``temperature`` is the standard deviation of ``v~``
    (1 is the paper's ``N(0, I)``).
    """

    stochastic = True

    def __init__(
        self,
        latent_channels: int = 12,
        levels: int = 2,
        blocks: int = 2,
        growth: int = 16,
        depth: int = 3,
        clamp: float = 1.0,
        init_scale: float = 0.5,
        init_gain: float = 16.0,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        check_int("levels", levels, 1)
        check_int("blocks", blocks, 0)
        total = 3 * 4**levels
        check_int("latent_channels", latent_channels, 1, total - 1)
        check_float("init_gain", init_gain, 0, open_low=True)
        self.temperature = check_float("temperature", temperature, 0)
        self.latent_channels, self.factor, self.total_channels = latent_channels, 2**levels, total
        subnet = dense_subnet(growth, depth, init_scale)
        layers: list[nn.Module] = []
        channels = 3
        for level in range(levels):
            layers.append(HaarDownsampling(channels))
            channels *= 4
            split = latent_channels if level == levels - 1 else channels // 4
            layers += [AffineCoupling(channels, split, subnet, clamp) for _ in range(blocks)]
        self.transform = InvertibleSequential(layers)
        self.log_gain = nn.Parameter(torch.full((latent_channels,), math.log(init_gain)))
        self.log_vgain = nn.Parameter(torch.full((total - latent_channels,), math.log(init_gain)))
        self.entropy_bottleneck = EntropyBottleneck(latent_channels)

    def _gain(self) -> Tensor:
        return self.log_gain.exp().view(1, -1, 1, 1)

    def _vgain(self) -> Tensor:
        return self.log_vgain.exp().view(1, -1, 1, 1)

    def log_det_v(self) -> Tensor:
        """``log |det|`` of the ``v`` gain per element of ``v``: the mean of ``log_vgain`` over channels."""
        return self.log_vgain.mean()

    def analysis(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``f(x) = (y, v)``: ``y`` and ``v``, each times its gain (``y`` ready for the quantiser)."""
        out = self.transform(x)
        return out[:, : self.latent_channels] * self._gain(), out[:, self.latent_channels :] * self._vgain()

    def sample_v(self, y_hat: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A fresh ``v~ ~ N(0, temperature^2 I)`` of the shape ``v`` has for this ``y_hat``."""
        b, _, h, w = y_hat.shape
        shape = (b, self.total_channels - self.latent_channels, h, w)
        noise = torch.randn(shape, generator=generator, dtype=y_hat.dtype, device="cpu" if generator else y_hat.device)
        return (noise.to(y_hat.device) * self.temperature).to(y_hat.dtype)

    def synthesis(self, y_hat: Tensor, v: Tensor | None = None, *, generator: torch.Generator | None = None) -> Tensor:
        """``f^-1(y_hat / gain, v)``; ``v=None`` draws a fresh ``v~`` (from ``generator`` if given)."""
        check_image_batch("y_hat", y_hat, channels=self.latent_channels)
        v = self.sample_v(y_hat, generator) if v is None else v
        out: Tensor = self.transform(torch.cat([y_hat / self._gain(), v / self._vgain()], dim=1), reverse=True)
        return out


class ConvAutoencoder(_Codec):
    """The auto-encoder codec of Ballé et al. (2018) at small size: CompressAI's GDN layers, ``levels`` stride-2 convs.

    ``g_a``: ``levels`` x [conv 5x5 stride 2], GDN between them, to ``latent_channels`` channels at
    ``1 / 2^levels`` of the side; ``g_s`` mirrors it with transposed convs and inverse GDN. Same latent size and
    entropy model as :class:`ILC`, so the two differ only in the transform.
    """

    def __init__(self, latent_channels: int = 12, levels: int = 2, width: int = 64) -> None:
        super().__init__()
        check_int("latent_channels", latent_channels, 1)
        check_int("levels", levels, 1)
        check_int("width", width, 1)
        self.latent_channels, self.factor = latent_channels, 2**levels
        encoder: list[nn.Module] = []
        decoder: list[nn.Module] = []
        for level in range(levels):
            c_in = 3 if level == 0 else width
            c_out = latent_channels if level == levels - 1 else width
            encoder.append(nn.Conv2d(c_in, c_out, 5, stride=2, padding=2))
            decoder.insert(0, nn.ConvTranspose2d(c_out, c_in, 5, stride=2, padding=2, output_padding=1))
            if level < levels - 1:
                encoder.append(GDN(width))
                decoder.insert(0, GDN(width, inverse=True))
        self.g_a, self.g_s = nn.Sequential(*encoder), nn.Sequential(*decoder)
        self.entropy_bottleneck = EntropyBottleneck(latent_channels)

    def analysis(self, x: Tensor) -> tuple[Tensor, None]:
        return self.g_a(x), None

    def synthesis(self, y_hat: Tensor, v: Tensor | None = None, *, generator: torch.Generator | None = None) -> Tensor:
        check_image_batch("y_hat", y_hat, channels=self.latent_channels)
        out: Tensor = self.g_s(y_hat)
        return out


def estimated_bits(likelihoods: Tensor) -> Tensor:
    """``-sum log2 p(y_hat)`` per image, ``(B,)``: the likelihood estimate of the bitstream length."""
    return -torch.log2(likelihoods).flatten(1).sum(1)


def rate_distortion_loss(
    out: dict[str, object], x: Tensor, lmbda: float, lambda_v: float = 0.0, model_log_det: Tensor | None = None
) -> dict[str, Tensor]:
    """``L = bpp + lmbda 255^2 MSE(x, x_hat) + lambda_v (mean(v^2) / 2 - mean log g_v)``: CompressAI's
    rate-distortion loss plus ILC's distribution term, the per-element negative log-likelihood of ``v`` under
    ``N(0, I)`` with the log-determinant of ``v``'s gain ``g_v`` (the couplings' own log-determinant is left
    out, as IRN does). ``x_hat`` is decoded from the noisy ``y~`` and a fresh ``v~``.

    Returns ``loss`` and its parts ``bpp`` (likelihood estimate), ``mse`` (``[0, 1]`` scale) and ``v`` (the
    distribution term, without its weight).
    """
    likelihoods = out["likelihoods"]["y"]  # type: ignore[index]
    x_hat: Tensor = out["x_hat"]  # type: ignore[assignment]
    pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
    bpp = estimated_bits(likelihoods).sum() / pixels
    mse = torch.mean((x_hat - x) ** 2)
    v = out["v"]
    log_det = model_log_det if model_log_det is not None else torch.zeros((), device=x.device)
    v_term = torch.mean(v**2) / 2 - log_det if isinstance(v, Tensor) else torch.zeros((), device=x.device)
    loss = bpp + lmbda * 255**2 * mse + lambda_v * v_term
    return {"loss": loss, "bpp": bpp, "mse": mse, "v": v_term}
