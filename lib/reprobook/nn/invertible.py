"""Invertible building blocks: the Haar downsampling transform, affine coupling, and stacks of both.

These are the layers of the Invertible Rescaling Net (IRN, Xiao et al., ECCV 2020) as the official code
(``pkuxmq/Invertible-Image-Rescaling``, ``codes/models/modules/Inv_arch.py``) builds them. Every module has
``forward(x, reverse=False)``: ``reverse=True`` runs the exact inverse, so ``m(m(x), reverse=True) == x`` up
to float rounding.

* :func:`haar_downsample` / :func:`haar_upsample` and :class:`HaarDownsampling`: ``(B, C, H, W) <->
  (B, 4C, H/2, W/2)``, the 2x2 Haar transform with the paper's ``/4`` forward and ``x1`` inverse.
* :class:`DenseSubnet`: the ESRGAN-style dense block used for the coupling functions, last conv zeroed (the
  official start) or all convs at PyTorch's default start (``init_scale=None``).
* :class:`AffineCoupling`: the InvBlock, an additive update of the first ``split`` channels and a clamped
  affine update of the rest; its element-wise epilogue runs the fused Triton kernel on CUDA.
* :class:`InvertibleSequential` and :func:`haar_coupling_stack`: ``levels`` x (Haar + ``blocks`` couplings).

Equation names follow the IRN paper's Sec. 3 (the paper writes the coupling functions as phi, rho, eta;
the code and this module as F, H, G). The paper's equation numbers were not available offline, so the
docstrings quote the equations instead of numbering them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from einops import rearrange
from torch import Tensor, nn

from reprobook._validate import check_float, check_image_batch
from reprobook.kernels.coupling import affine_coupling

OFFICIAL_INIT_SCALE = 0.1
"""The factor on the Xavier-normal initialisation of the dense subnets' hidden convs in the official code."""

SubnetFactory = Callable[[int, int], nn.Module]
"""``factory(in_channels, out_channels) -> module`` mapping ``(B, in, H, W) -> (B, out, H, W)``."""

# Rows: the four Haar filters on a 2x2 patch read row-major as (a, b, c, d) = (top-left, top-right,
# bottom-left, bottom-right). Row 0 is the average (LL); rows 1-3 are the official code's filters 1-3:
# horizontal detail (a - b + c - d), vertical detail (a + b - c - d), diagonal detail (a - b - c + d).
_HAAR = torch.tensor(
    [[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]
)  # _HAAR @ _HAAR.T == 4 I, so (_HAAR / 4)^-1 == _HAAR.T


def haar_downsample(x: Tensor) -> Tensor:
    """Haar transform, ``(B, C, H, W) -> (B, 4C, H/2, W/2)``; ``H`` and ``W`` must be even.

    Each 2x2 patch ``(a, b; c, d)`` of each channel becomes ``(a+b+c+d)/4`` (the patch mean, so the first
    ``C`` channels are a half-size image in the input's range), ``(a-b+c-d)/4``, ``(a+b-c-d)/4`` and
    ``(a-b-c+d)/4``. Channel order, as in the official code: ``[LL of all C channels, band 1 of all C,
    band 2 of all C, band 3 of all C]``.
    """
    check_image_batch("x", x)
    height, width = x.shape[-2:]
    if height % 2 or width % 2:
        raise ValueError(f"haar_downsample needs even H and W, got x of shape {tuple(x.shape)}")
    patches = rearrange(x, "b c (h p) (w q) -> b c (p q) h w", p=2, q=2)
    bands = torch.einsum("kj,bcjhw->bkchw", _HAAR.to(x), patches) / 4
    return rearrange(bands, "b k c h w -> b (k c) h w")


def haar_upsample(y: Tensor) -> Tensor:
    """Exact inverse of :func:`haar_downsample`: ``(B, 4C, H, W) -> (B, C, 2H, 2W)`` (no ``/4``: ``x1``)."""
    check_image_batch("y", y)
    if y.shape[1] % 4:
        raise ValueError(f"haar_upsample needs a channel count divisible by 4, got y of shape {tuple(y.shape)}")
    bands = rearrange(y, "b (k c) h w -> b k c h w", k=4)
    patches = torch.einsum("kj,bkchw->bcjhw", _HAAR.to(y), bands)
    return rearrange(patches, "b c (p q) h w -> b c (h p) (w q)", p=2, q=2)


class HaarDownsampling(nn.Module):
    """The Haar layer: ``forward(x)`` is :func:`haar_downsample`, ``forward(y, reverse=True)`` its inverse.

    ``channels`` is the input channel count ``C``; the output has ``4C``. No parameters.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        self.channels = channels

    def forward(self, x: Tensor, reverse: bool = False) -> Tensor:
        if reverse:
            check_image_batch("x", x, channels=4 * self.channels)
            return haar_upsample(x)
        check_image_batch("x", x, channels=self.channels)
        return haar_downsample(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class DenseSubnet(nn.Module):
    """ESRGAN-style dense block, ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.

    ``depth`` 3x3 convolutions (5 in the official code); all but the last output ``growth`` channels
    each, followed by LeakyReLU(0.2), and each conv sees the input concatenated with all earlier outputs.
    Those hidden convs start Xavier-normal scaled by ``init_scale`` (:data:`OFFICIAL_INIT_SCALE`, 0.1, in the
    official code's ``initialize_weights_xavier``, tuned for 500 000 steps), and **the last conv starts at zero**, so
    a fresh subnet outputs 0 and a fresh coupling block is the identity. ``init_scale=None`` keeps PyTorch's default
    initialisation of every conv instead, the last one included: a fresh block is then a random invertible map, and
    in a budget of a few thousand steps it learns faster than the official start (the IRN chapter measures it).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        growth: int = 32,
        depth: int = 5,
        init_scale: float | None = OFFICIAL_INIT_SCALE,
    ) -> None:
        super().__init__()
        sizes = {"in_channels": in_channels, "out_channels": out_channels, "growth": growth, "depth": depth}
        for name, value in sizes.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        hidden = [nn.Conv2d(in_channels + k * growth, growth, 3, padding=1) for k in range(depth - 1)]
        last = nn.Conv2d(in_channels + (depth - 1) * growth, out_channels, 3, padding=1)
        if init_scale is not None:
            check_float("init_scale", init_scale, 0, open_low=True)
            for conv in hidden:
                nn.init.xavier_normal_(conv.weight)
                conv.weight.data.mul_(init_scale)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)
        self.convs, self.last, self.act = nn.ModuleList(hidden), last, nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        features = x
        for conv in self.convs:
            features = torch.cat([features, self.act(conv(features))], dim=1)
        out: Tensor = self.last(features)
        return out


def dense_subnet(growth: int = 32, depth: int = 5, init_scale: float | None = OFFICIAL_INIT_SCALE) -> SubnetFactory:
    """A :data:`SubnetFactory` building :class:`DenseSubnet` with the given ``growth``, ``depth`` and ``init_scale``."""
    return lambda in_channels, out_channels: DenseSubnet(in_channels, out_channels, growth, depth, init_scale)


class AffineCoupling(nn.Module):
    """The InvBlock of the IRN paper: additive update of ``x1``, clamped affine update of ``x2``.

    ``x: (B, channels, H, W)`` is split into ``x1`` (the first ``split`` channels: the LR branch in IRN)
    and ``x2`` (the other ``channels - split``). Forward and inverse::

        y1 = x1 + F(x2)                       x2 = (y2 - G(y1)) * exp(-s)
        s  = c * (2 sigmoid(H(y1)) - 1)       x1 = y1 - F(x2)
        y2 = x2 * exp(s) + G(y1)              with the same s = c * (2 sigmoid(H(y1)) - 1)

    The paper writes ``phi, rho, eta`` for ``F, H, G`` and ``exp(rho)``; the clamp ``c`` (1 by default) keeps
    each block's scale factor in ``(e^-c, e^c)``, which keeps deep stacks stable. The element-wise part
    (``s`` and the affine map) is :func:`reprobook.kernels.coupling.affine_coupling`: a fused Triton
    kernel on CUDA, PyTorch elsewhere. With zero-initialised subnets the block starts as the identity.
    """

    def __init__(self, channels: int, split: int, subnet: SubnetFactory | None = None, clamp: float = 1.0) -> None:
        super().__init__()
        if not isinstance(channels, int) or not isinstance(split, int) or not 0 < split < channels:
            raise ValueError(f"split must be an integer with 0 < split < channels={channels!r}, got {split!r}")
        if not clamp > 0:
            raise ValueError(f"clamp must be positive, got {clamp!r}")
        make = subnet if subnet is not None else dense_subnet()
        self.channels, self.split, self.clamp = channels, split, float(clamp)
        self.F = make(channels - split, split)
        self.G = make(split, channels - split)
        self.H = make(split, channels - split)

    def forward(self, x: Tensor, reverse: bool = False) -> Tensor:
        check_image_batch("x", x, channels=self.channels)
        a, b = x[:, : self.split], x[:, self.split :]
        if not reverse:
            y1 = a + self.F(b)
            y2 = affine_coupling(b, self.H(y1), self.G(y1), self.clamp)
            return torch.cat([y1, y2], dim=1)
        x2 = affine_coupling(b, self.H(a), self.G(a), self.clamp, reverse=True)
        return torch.cat([a - self.F(x2), x2], dim=1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, split={self.split}, clamp={self.clamp:g}"


class InvertibleSequential(nn.Sequential):
    """Invertible modules in sequence: forward runs them in order, ``reverse=True`` inverts them backwards."""

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        super().__init__(*modules)

    def forward(self, x: Tensor, reverse: bool = False) -> Tensor:
        layers = reversed(list(self)) if reverse else iter(self)
        for layer in layers:
            x = layer(x, reverse=reverse)
        return x


def haar_coupling_stack(
    in_channels: int = 3,
    levels: int = 1,
    blocks: int = 8,
    split: int | None = None,
    subnet: SubnetFactory | None = None,
    clamp: float = 1.0,
) -> InvertibleSequential:
    """``levels`` x (:class:`HaarDownsampling` then ``blocks`` :class:`AffineCoupling` blocks).

    Maps ``(B, C, H, W) -> (B, C 4^levels, H / 2^levels, W / 2^levels)`` with ``C = in_channels``. Each
    coupling splits off the first ``split`` channels (default ``in_channels``: the low-pass image, as in
    IRN). ``levels=1, blocks=8`` is IRN x2; ``levels=2, blocks=8`` is IRN x4.
    """
    if not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be a positive integer, got {levels!r}")
    if not isinstance(blocks, int) or blocks < 0:
        raise ValueError(f"blocks must be a non-negative integer, got {blocks!r}")
    split = in_channels if split is None else split
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(levels):
        layers.append(HaarDownsampling(channels))
        channels *= 4
        layers += [AffineCoupling(channels, split, subnet, clamp) for _ in range(blocks)]
    return InvertibleSequential(layers)
