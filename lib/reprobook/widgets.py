"""Widgets that survive the static book: plain HTML, no Jupyter kernel, no ipywidgets.

* :func:`compare_images` -- a before/after slider: two images stacked, the top one clipped at the
  slider position. The only script is an inline ``oninput`` handler, so it works in the built HTML
  book, in JupyterLab (trusted output) and in Colab.
* :func:`audio_grid` -- a table of labelled ``<audio>`` players (no autoplay).

Both return objects with ``_repr_html_`` so a notebook cell can simply end with them.
"""

from __future__ import annotations

import base64
import html
import io
import uuid
from collections.abc import Sequence

import numpy as np
import torch
from IPython.display import Audio
from PIL import Image

from reprobook._html import HTMLWidget
from reprobook._validate import check_float, check_int, check_range


def _as_hwc_uint8(image: torch.Tensor | np.ndarray, argument: str) -> np.ndarray:
    """(3, H, W) or (H, W, 3) or (H, W) floats in [0, 1] -> (H, W, 3) uint8."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3) or 0 in array.shape:
        raise ValueError(
            f"{argument} must have shape (3, H, W), (H, W, 3) or (H, W) with H, W >= 1; got {tuple(image.shape)}"
        )
    if array.dtype != np.uint8:
        if array.size and (np.nanmin(array) < -1e-3 or np.nanmax(array) > 1 + 1e-3):
            raise ValueError(f"{argument} must hold floats in [0, 1] (or uint8); got values outside that range")
        array = np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def _png_data_uri(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def compare_images(
    left: torch.Tensor | np.ndarray,
    right: torch.Tensor | np.ndarray,
    labels: tuple[str, str] = ("before", "after"),
    *,
    crop: tuple[int, int, int, int] | None = None,
    width: int = 480,
    start: float = 0.5,
) -> HTMLWidget:
    """A before/after slider: ``left`` shows left of the handle, ``right`` to its right.

    Args:
        left, right: images of the same size, ``(3, H, W)`` tensors or ``(H, W, 3)`` arrays in [0, 1].
        labels: captions shown in the top corners.
        crop: optional zoom window ``(top, left, height, width)`` in pixels; the crop is scaled up
            with nearest-neighbour pixels so that fine detail stays visible.
        width: displayed width in CSS pixels.
        start: initial slider position as a fraction of the width.
    """
    check_range("start", start, 0.0, 1.0)
    check_int("width", width, 1, 4096)
    a, b = _as_hwc_uint8(left, "left"), _as_hwc_uint8(right, "right")
    if a.shape != b.shape:
        raise ValueError(f"left and right must have the same size; got {a.shape[:2]} and {b.shape[:2]}")
    if crop is not None:
        top, x0, h, w = crop
        if h <= 0 or w <= 0 or top < 0 or x0 < 0 or top + h > a.shape[0] or x0 + w > a.shape[1]:
            raise ValueError(f"crop={crop} must be (top, left, height, width) inside the {a.shape[:2]} image")
        a, b = a[top : top + h, x0 : x0 + w], b[top : top + h, x0 : x0 + w]
    height = round(width * a.shape[0] / a.shape[1])
    uid = f"rb-compare-{uuid.uuid4().hex[:12]}"  # unique across kernels and open notebooks, not just this kernel
    percent = 100 * start
    pixelated = "image-rendering:pixelated;" if crop is not None else ""
    img_style = f"position:absolute;top:0;left:0;width:{width}px;height:{height}px;{pixelated}"
    bar_style = "position:absolute;top:0;bottom:0;width:2px;background:#fff;box-shadow:0 0 3px #000;"
    label_style = "position:absolute;top:4px;padding:1px 6px;background:rgba(0,0,0,.6);color:#fff;font:12px sans-serif;"
    handler = (
        f"var t=document.getElementById('{uid}-top');"
        f"t.style.clipPath='inset(0 '+(100-this.value)+'% 0 0)';"
        f"document.getElementById('{uid}-bar').style.left=this.value+'%';"
    )
    markup = f"""
<div class="reprobook-compare" id="{uid}" style="width:{width}px;margin:0.5em 0;">
  <div style="position:relative;width:{width}px;height:{height}px;overflow:hidden;">
    <img alt="{html.escape(labels[1])}" src="{_png_data_uri(b)}" style="{img_style}">
    <img id="{uid}-top" class="reprobook-compare-top" alt="{html.escape(labels[0])}" src="{_png_data_uri(a)}"
         style="{img_style}clip-path:inset(0 {100 - percent:g}% 0 0);">
    <div id="{uid}-bar" style="{bar_style}left:{percent:g}%;"></div>
    <span style="{label_style}left:4px;">{html.escape(labels[0])}</span>
    <span style="{label_style}right:4px;">{html.escape(labels[1])}</span>
  </div>
  <input type="range" min="0" max="100" step="0.5" value="{percent:g}" aria-label="comparison position"
         style="width:{width}px;margin:4px 0 0 0;" oninput="{handler}">
</div>"""
    return HTMLWidget(markup.strip())


def audio_grid(
    clips: Sequence[tuple[str, torch.Tensor | np.ndarray]],
    sample_rate: int,
    *,
    max_seconds: float = 8.0,
    normalize: bool = True,
) -> HTMLWidget:
    """A table of labelled audio players, one row per ``(label, waveform)`` clip; no autoplay.

    Waveforms are 1-D (or ``(1, T)``) floats. With ``normalize`` (default) ``IPython.display.Audio`` scales each
    clip to full volume; ``normalize=False`` keeps their relative loudness (values must lie in ``[-1, 1]``).
    Clips longer than ``max_seconds`` are rejected to keep the built pages light.
    """
    check_int("sample_rate", sample_rate, 1)
    check_float("max_seconds", max_seconds, 0, open_low=True)
    if not clips:
        raise ValueError("clips must contain at least one (label, waveform) pair")
    rows = []
    for label, waveform in clips:
        samples = (
            waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
        ).squeeze()
        if samples.ndim != 1 or samples.size == 0:
            raise ValueError(
                f"clip {label!r}: waveform must be non-empty with shape (T,) or (1, T); got {samples.shape}"
            )
        if samples.size > max_seconds * sample_rate:
            raise ValueError(f"clip {label!r} lasts {samples.size / sample_rate:.1f} s; max_seconds={max_seconds}")
        if not normalize and np.abs(samples).max() > 1:
            raise ValueError(f"clip {label!r}: with normalize=False the samples must lie in [-1, 1]")
        player = Audio(samples, rate=sample_rate, autoplay=False, normalize=normalize)._repr_html_()
        rows.append(f'<tr><td style="padding-right:1em;">{html.escape(label)}</td><td>{player}</td></tr>')
    return HTMLWidget(f'<table class="reprobook-audio">{"".join(rows)}</table>')
