"""Haar transform, affine coupling and their stacks: shapes, exact inverses, the official conventions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reprobook.nn.invertible import (
    OFFICIAL_INIT_SCALE,
    AffineCoupling,
    DenseSubnet,
    HaarDownsampling,
    InvertibleSequential,
    dense_subnet,
    haar_coupling_stack,
    haar_downsample,
    haar_upsample,
)


def _official_haar(x: torch.Tensor) -> torch.Tensor:
    """``HaarDownsampling.forward`` of pkuxmq/Invertible-Image-Rescaling, written out independently."""
    channels = x.shape[1]
    weights = torch.ones(4, 1, 2, 2)
    weights[1, 0, 0, 1] = weights[1, 0, 1, 1] = -1
    weights[2, 0, 1, 0] = weights[2, 0, 1, 1] = -1
    weights[3, 0, 1, 0] = weights[3, 0, 0, 1] = -1
    out = F.conv2d(x, torch.cat([weights] * channels, 0), stride=2, groups=channels) / 4.0
    out = out.reshape(x.shape[0], channels, 4, x.shape[2] // 2, x.shape[3] // 2).transpose(1, 2)
    return out.reshape(x.shape[0], 4 * channels, x.shape[2] // 2, x.shape[3] // 2)


def _perturb(module: torch.nn.Module, scale: float = 0.05) -> None:
    """Move every weight off its initial value, so the zero-initialised convs no longer make an identity."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))


def test_haar_matches_the_official_grouped_convolution() -> None:
    x = torch.rand(2, 3, 6, 10)
    torch.testing.assert_close(haar_downsample(x), _official_haar(x))


def test_haar_round_trip_is_exact_and_the_first_band_is_the_2x2_mean() -> None:
    x = torch.rand(2, 5, 8, 6, dtype=torch.float64)
    y = haar_downsample(x)
    assert y.shape == (2, 20, 4, 3)
    torch.testing.assert_close(y[:, :5], F.avg_pool2d(x, 2))
    torch.testing.assert_close(haar_upsample(y), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(haar_downsample(haar_upsample(y)), y, atol=1e-12, rtol=0)


def test_haar_of_a_flat_image_has_no_detail() -> None:
    y = haar_downsample(torch.full((1, 3, 4, 4), 0.3))
    assert torch.allclose(y[:, :3], torch.tensor(0.3)) and y[:, 3:].abs().max() == 0


def test_haar_layer_checks_shapes() -> None:
    layer = HaarDownsampling(3)
    with pytest.raises(ValueError, match="even H and W"):
        layer(torch.rand(1, 3, 5, 4))
    with pytest.raises(ValueError, match="x must have 3 channels"):
        layer(torch.rand(1, 4, 4, 4))
    with pytest.raises(ValueError, match="x must have 12 channels"):
        layer(torch.rand(1, 3, 4, 4), reverse=True)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        haar_downsample(torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match=r"y must hold floats in \[0, 1\]"):
        haar_upsample(torch.zeros(1, 12, 2, 2, dtype=torch.long))


def test_dense_subnet_starts_at_zero_and_has_the_official_size() -> None:
    net = DenseSubnet(3, 9, growth=32, depth=5)
    assert net(torch.rand(2, 3, 5, 5)).abs().max() == 0
    assert (
        sum(p.numel() for p in net.parameters())
        == (3 * 9 + 1) * 32 + (35 * 9 + 1) * 32 + (67 * 9 + 1) * 32 + (99 * 9 + 1) * 32 + (131 * 9 + 1) * 9
    )
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        DenseSubnet(3, 9, depth=0)


def test_dense_subnet_init_scale_scales_the_hidden_convs_only() -> None:
    """``init_scale`` multiplies the Xavier-normal hidden convs (0.1 officially); the last conv stays at zero."""
    torch.manual_seed(0)
    official = DenseSubnet(3, 9, growth=8, depth=3)
    torch.manual_seed(0)
    larger = DenseSubnet(3, 9, growth=8, depth=3, init_scale=1.0)
    assert OFFICIAL_INIT_SCALE == 0.1
    for small, big in zip(official.convs, larger.convs):
        torch.testing.assert_close(big.weight, 10 * small.weight)
        assert small.bias is not None and small.bias.abs().max() == 0
    assert larger.last.weight.abs().max() == 0 and larger(torch.rand(1, 3, 4, 4)).abs().max() == 0
    block = AffineCoupling(12, 3, dense_subnet(8, 3, init_scale=1.0))
    x = torch.randn(1, 12, 4, 4)
    torch.testing.assert_close(block(x), x)  # still the identity at the start
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="init_scale"):
            DenseSubnet(3, 9, init_scale=bad)


def test_dense_subnet_without_init_scale_keeps_pytorchs_default_start() -> None:
    """``init_scale=None``: every conv keeps PyTorch's default start, the last one included, so a fresh block is a
    random invertible map (not the identity) and still inverts exactly."""
    torch.manual_seed(0)
    subnet = DenseSubnet(3, 9, growth=8, depth=3, init_scale=None)
    torch.manual_seed(0)
    reference = [nn.Conv2d(3 + k * 8, 8, 3, padding=1) for k in range(2)] + [nn.Conv2d(19, 9, 3, padding=1)]
    for conv, expected in zip([*subnet.convs, subnet.last], reference):
        torch.testing.assert_close(conv.weight, expected.weight)
        torch.testing.assert_close(conv.bias, expected.bias)
    block = AffineCoupling(12, 3, dense_subnet(8, 3, init_scale=None)).double()
    x = torch.randn(1, 12, 4, 4, dtype=torch.float64)
    out = block(x)
    assert (out - x).abs().max() > 1e-2
    torch.testing.assert_close(block(out, reverse=True), x)


def test_coupling_starts_as_the_identity() -> None:
    block = AffineCoupling(12, 3, dense_subnet(8, 3))
    x = torch.randn(2, 12, 4, 4)
    torch.testing.assert_close(block(x), x)


def test_coupling_inverse_of_forward_is_exact() -> None:
    block = AffineCoupling(12, 3, dense_subnet(8, 3)).double()
    _perturb(block, 0.2)
    x = torch.randn(2, 12, 5, 7, dtype=torch.float64)
    y = block(x)
    assert (y - x).abs().max() > 0.1  # the block really transforms
    torch.testing.assert_close(block(y, reverse=True), x, atol=1e-10, rtol=0)
    torch.testing.assert_close(block(block(x, reverse=True)), x, atol=1e-10, rtol=0)


def test_coupling_scale_stays_within_the_clamp() -> None:
    """With huge subnet outputs the z half is multiplied by at most e^clamp: y2 = x2 exp(s) + G, |s| <= c."""
    block = AffineCoupling(6, 3, dense_subnet(4, 2), clamp=0.5)
    with torch.no_grad():
        for subnet in (block.H, block.G, block.F):
            subnet.last.bias.fill_(50.0 if subnet is block.H else 0.0)
    x = torch.randn(1, 6, 3, 3)
    y = block(x)
    torch.testing.assert_close(y[:, 3:], x[:, 3:] * torch.exp(torch.tensor(0.5)))


def test_coupling_rejects_bad_split_and_channels() -> None:
    with pytest.raises(ValueError, match="0 < split < channels"):
        AffineCoupling(3, 3)
    with pytest.raises(ValueError, match="x must have 12 channels"):
        AffineCoupling(12, 3, dense_subnet(4, 2))(torch.rand(1, 6, 4, 4))


@pytest.mark.parametrize("levels", [1, 2])
def test_stack_shapes_identity_start_and_exact_inverse(levels: int) -> None:
    stack = haar_coupling_stack(3, levels=levels, blocks=2, subnet=dense_subnet(4, 2)).double()
    x = torch.rand(2, 3, 8, 12, dtype=torch.float64)
    out = stack(x)
    assert out.shape == (2, 3 * 4**levels, 8 // 2**levels, 12 // 2**levels)
    haar = x
    for _ in range(levels):
        haar = haar_downsample(haar)
    torch.testing.assert_close(out, haar)  # zero-initialised subnets: the stack is the Haar transform
    _perturb(stack)
    torch.testing.assert_close(stack(stack(x), reverse=True), x, atol=1e-10, rtol=0)


def test_official_architectures_have_the_published_parameter_counts() -> None:
    """The README of the official code: 1.66 M parameters at x2, 4.35 M at x4 (8 blocks per level, growth 32)."""
    x2 = haar_coupling_stack(3, levels=1, blocks=8, subnet=dense_subnet(32, 5))
    x4 = haar_coupling_stack(3, levels=2, blocks=8, subnet=dense_subnet(32, 5))
    assert sum(p.numel() for p in x2.parameters()) == 1_667_952  # the README truncates to "1.66M"
    assert sum(p.numel() for p in x4.parameters()) == 4_355_136  # "4.35M"


def test_invertible_sequential_inverts_in_reverse_order() -> None:
    seq = InvertibleSequential([HaarDownsampling(3), HaarDownsampling(12)])
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    assert seq(x).shape == (1, 48, 2, 2)
    torch.testing.assert_close(seq(seq(x), reverse=True), x)
