"""Property-based tests (hypothesis) over the shared public API: generated shapes, dtypes, sizes and values.

Each call either returns a valid result or raises ``ValueError``/``TypeError`` naming the argument: never a silent
wrong number, never an error from deep inside torch. The ``ci`` profile (tests/conftest.py) keeps them fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reprobook._validate import check_float, check_int
from reprobook.data import images
from reprobook.metrics import psnr, rgb_to_y, ssim
from reprobook.train import NonFiniteLossError, fit
from reprobook.widgets import audio_grid, compare_images

DTYPES = st.sampled_from([torch.float32, torch.float64, torch.uint8, torch.int64, torch.bool])
NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.text(max_size=3)
)


def tensors(min_dims: int = 0, max_dims: int = 5, max_side: int = 12):
    return st.builds(
        lambda shape, dtype, scale: (torch.rand(shape) * scale).to(dtype),
        st.lists(st.integers(0, max_side), min_size=min_dims, max_size=max_dims).map(tuple),
        DTYPES,
        st.sampled_from([1.0, 255.0, -1.0]),
    )


def refuses_by_name(call, *names: str) -> None:
    """Run ``call``; a ValueError/TypeError must name one of ``names``. Returns the result otherwise."""
    try:
        return call()
    except (ValueError, TypeError) as error:
        assert any(name in str(error) for name in names), f"unclear error: {error!r}"
    return None


@given(value=NUMBERS, low=st.integers(-5, 5))
def test_check_int_accepts_exactly_the_integers_in_range(value, low):
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if ok:
        assert check_int("n", value, low) == value
    else:
        with pytest.raises(ValueError, match=r"\bn\b"):
            check_int("n", value, low)


@given(value=NUMBERS)
def test_check_float_never_lets_nan_or_infinity_through(value):
    finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if finite:
        assert check_float("lr", value) == value
    else:
        with pytest.raises(ValueError, match="lr"):
            check_float("lr", value)


@given(x=tensors(), y=tensors(), crop=st.integers(-1, 4), y_channel=st.booleans())
def test_psnr_and_ssim_return_finite_or_refuse(x, y, crop, y_channel):
    for metric in (psnr, ssim):
        result = refuses_by_name(
            lambda metric=metric: metric(x, y, crop_border=crop, y_channel=y_channel),
            "x",
            "y",
            "crop_border",
            "image",
            "data_range",
            "SSIM",
            "ssim",
        )
        if result is not None:
            assert result.dtype == torch.float64
            assert not torch.isnan(result).any(), "a metric must never return NaN silently"


@given(image=tensors(1, 4))
def test_rgb_to_y_takes_float_rgb_only(image):
    result = refuses_by_name(lambda: rgb_to_y(image), "image")
    if result is not None:
        assert result.shape[-3] == 1 and image.is_floating_point()


@given(crop=st.integers(-2, 40), count=st.integers(-2, 5), seed=st.integers(0, 2**31))
def test_random_crops_are_the_asked_size_or_refused(crop, count, seed):
    photo = [torch.rand(3, 20, 24)]
    crops = refuses_by_name(lambda: images.random_crops(photo, crop, count, seed), "crop_size", "num_crops")
    if crops is not None:
        assert crops.shape == (count, 3, crop, crop)


@given(image=tensors(2, 3, 9), width=st.integers(-5, 600))
def test_compare_images_renders_or_refuses(image, width):
    html = refuses_by_name(lambda: compare_images(image, image, width=width).html, "left", "right", "width")
    if html is not None:
        assert html.count("<img") == 2


@given(samples=st.integers(0, 50), rate=st.integers(-2, 16000), seconds=st.one_of(st.floats(-1, 10), st.just(math.nan)))
def test_audio_grid_renders_or_refuses(samples, rate, seconds):
    html = refuses_by_name(
        lambda: audio_grid([("clip", np.zeros(samples))], rate, max_seconds=seconds).html,
        "sample_rate",
        "max_seconds",
        "waveform",
        "clip",
    )
    if html is not None:
        assert "<audio" in html and "autoplay" not in html.replace('autoplay="false"', "")


@given(losses=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=20))
def test_fit_records_finite_losses_and_stops_at_the_first_other(losses):
    values = iter(losses)
    first_bad = next((i for i, v in enumerate(losses, start=1) if not math.isfinite(v)), None)
    if first_bad is None:
        history = fit(lambda _: {"loss": next(values)}, [0], len(losses), progress=False)
        assert history["loss"] == losses
    else:
        with pytest.raises(NonFiniteLossError, match=f"step {first_bad} "):
            fit(lambda _: {"loss": next(values)}, [0], len(losses), progress=False)
