"""PSNR, SSIM and the BT.601 luma: exact values, agreement with scikit-image, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from reprobook.metrics import psnr, rgb_to_y, ssim


def _noisy_pair(shape: tuple[int, ...], sigma: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=generator)
    x = torch.nn.functional.avg_pool2d(x.reshape(-1, 1, *shape[-2:]), 3, 1, 1).reshape(shape)  # some structure
    y = (x + sigma * torch.randn(shape, generator=generator)).clamp(0, 1)
    return x, y


def _skimage_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """Wang et al.'s settings in scikit-image, channel axis first."""
    return float(
        structural_similarity(
            x.double().numpy(),
            y.double().numpy(),
            channel_axis=0,
            data_range=data_range,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def test_rgb_to_y_known_values() -> None:
    colours = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    images = colours.view(5, 3, 1, 1).expand(5, 3, 2, 4)
    y = rgb_to_y(images)
    assert y.shape == (5, 1, 2, 4)
    expected = torch.tensor([16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966]) / 255
    torch.testing.assert_close(y[:, 0, 0, 0], expected)


def test_rgb_to_y_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\).*\(1, 4, 4\)"):
        rgb_to_y(torch.zeros(1, 4, 4))


def test_psnr_identical_is_inf() -> None:
    x = torch.rand(3, 8, 8)
    assert psnr(x, x.clone()).item() == math.inf


def test_psnr_known_mse_is_exact() -> None:
    x = torch.zeros(2, 3, 16, 16)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01 -> 20 dB
    y[1, :, :8] += 0.1  # MSE 0.005 -> 20 + 10 log10(2) dB
    values = psnr(x, y)
    assert values.shape == (2,)
    torch.testing.assert_close(values, torch.tensor([20.0, 20.0 + 10 * math.log10(2)], dtype=torch.float64))
    torch.testing.assert_close(psnr(x * 255, y * 255, data_range=255.0), values)


def test_psnr_single_image_is_a_scalar_and_matches_skimage() -> None:
    x, y = _noisy_pair((3, 32, 40))
    value = psnr(x, y)
    assert value.ndim == 0
    expected = peak_signal_noise_ratio(x.double().numpy(), y.double().numpy(), data_range=1.0)
    assert value.item() == pytest.approx(expected)


def test_crop_border_ignores_the_border() -> None:
    x = torch.rand(1, 3, 20, 20)
    y = x.clone()
    y[..., :2, :] = 1 - y[..., :2, :]
    assert math.isfinite(psnr(x, y).item())
    assert psnr(x, y, crop_border=2).item() == math.inf
    assert ssim(x, y, crop_border=2).item() == pytest.approx(1.0)
    assert psnr(x, y, crop_border=1).item() < math.inf


def test_y_channel_ignores_chroma() -> None:
    x, _ = _noisy_pair((2, 3, 24, 24))
    # a colour change orthogonal to the BT.601 luma weights leaves Y unchanged
    chroma = torch.tensor([128.553, -65.481, 0.0]).view(1, 3, 1, 1) / 2000
    y = x + chroma
    assert psnr(x, y).max().item() < 40
    assert psnr(x, y, y_channel=True).min().item() > 100
    _, z = _noisy_pair((2, 3, 24, 24), seed=1)
    torch.testing.assert_close(psnr(x, z, y_channel=True), psnr(rgb_to_y(x), rgb_to_y(z)))


def test_ssim_matches_skimage() -> None:
    x, y = _noisy_pair((2, 3, 40, 48))
    values = ssim(x, y)
    assert values.shape == (2,)
    for i in range(2):
        assert values[i].item() == pytest.approx(_skimage_ssim(x[i], y[i]), abs=1e-9)
    assert 0.0 < values.min().item() < 0.99


def test_ssim_on_y_channel_and_data_range_match_skimage() -> None:
    x, y = _noisy_pair((3, 30, 30), sigma=0.1, seed=2)
    expected = _skimage_ssim(rgb_to_y(x.double()), rgb_to_y(y.double()))
    assert ssim(x, y, y_channel=True).item() == pytest.approx(expected, abs=1e-9)
    scaled = ssim(x.double() * 255, y.double() * 255, data_range=255.0, y_channel=True)
    assert scaled.item() == pytest.approx(expected, abs=1e-9)


def test_ssim_identical_is_one_and_falls_with_noise() -> None:
    x, _ = _noisy_pair((3, 32, 32))
    assert ssim(x, x.clone()).item() == pytest.approx(1.0)
    scores = [ssim(x, _noisy_pair((3, 32, 32), sigma=s)[1]).item() for s in (0.02, 0.1, 0.3)]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_shape_mismatch_names_both_shapes(metric) -> None:
    with pytest.raises(ValueError, match=r"x and y.*x: \(3, 16, 16\).*y: \(3, 16, 17\)"):
        metric(torch.zeros(3, 16, 16), torch.zeros(3, 16, 17))


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_bad_arguments_raise(metric) -> None:
    image = torch.zeros(3, 16, 16)
    with pytest.raises(ValueError, match="crop_border"):
        metric(image, image, crop_border=8)
    with pytest.raises(ValueError, match="data_range"):
        metric(image, image, data_range=0.0)
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(B, C, H, W\)"):
        metric(torch.zeros(16, 16), torch.zeros(16, 16))


def test_ssim_needs_an_11x11_window() -> None:
    image = torch.zeros(1, 3, 14, 14)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(image, image, crop_border=2)


def test_metrics_accept_numpy_converted_uint8_style_ranges() -> None:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (3, 16, 16)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 256, (3, 16, 16)).astype(np.float32))
    torch.testing.assert_close(psnr(x, y, data_range=255.0), psnr(x / 255, y / 255))
    torch.testing.assert_close(ssim(x, y, data_range=255.0), ssim(x / 255, y / 255))
