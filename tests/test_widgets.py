import re

import numpy as np
import pytest
import torch

from reprobook.widgets import audio_grid, compare_images


def test_compare_images_is_self_contained_html():
    a, b = torch.zeros(3, 8, 12), torch.ones(3, 8, 12)
    markup = compare_images(a, b, labels=("bicubic", "IRN"), width=120)._repr_html_()
    assert markup.count("<img") == 2 and markup.count("data:image/png;base64,") == 2
    assert 'type="range"' in markup and "oninput=" in markup and "clip-path:inset(0 50% 0 0)" in markup
    assert "bicubic" in markup and "IRN" in markup
    assert "height:80px" in markup  # aspect ratio 8:12 kept at width 120
    assert "<script" not in markup  # nothing a sanitiser would strip


def test_compare_images_ids_are_unique_even_across_kernels():
    import importlib

    import reprobook.widgets as widgets

    a = np.zeros((4, 4, 3))

    def slider_id(module):
        return re.search(r'id="(rb-compare-[0-9a-f]+)"', module.compare_images(a, a).html).group(1)

    ids = {slider_id(widgets) for _ in range(3)}
    fresh = importlib.reload(widgets)  # a second kernel starts from a freshly imported module
    ids.add(slider_id(fresh))
    assert len(ids) == 4, "two open notebooks must never share a slider id"


def test_compare_images_zoom_crop_changes_aspect():
    image = torch.rand(3, 10, 20)
    markup = compare_images(image, image, crop=(0, 0, 5, 5), width=100).html
    assert "height:100px" in markup and "pixelated" in markup


@pytest.mark.parametrize(
    ("left", "right", "message"),
    [
        (torch.zeros(3, 4, 4), torch.zeros(3, 4, 5), "same size"),
        (torch.zeros(4, 4, 4, 4), torch.zeros(3, 4, 4), r"left must have shape"),
        (torch.full((3, 4, 4), 2.0), torch.zeros(3, 4, 4), r"left must hold floats in \[0, 1\]"),
    ],
)
def test_compare_images_bad_input(left, right, message):
    with pytest.raises(ValueError, match=message):
        compare_images(left, right)


def test_compare_images_bad_crop():
    with pytest.raises(ValueError, match="crop="):
        compare_images(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4), crop=(2, 2, 4, 4))


def test_audio_grid_has_one_player_per_clip_and_no_autoplay():
    t = np.linspace(0, 0.5, 11025, endpoint=False)
    clips = [("reference", np.sin(2 * np.pi * 220 * t)), ("model", torch.tensor(np.sin(2 * np.pi * 330 * t)))]
    markup = audio_grid(clips, sample_rate=22050)._repr_html_()
    assert markup.count("<audio") == 2 and "autoplay" not in markup
    assert "reference" in markup and "model" in markup and "data:audio/wav;base64," in markup


def test_audio_grid_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        audio_grid([], sample_rate=22050)
    with pytest.raises(ValueError, match="max_seconds"):
        audio_grid([("long", np.zeros(22050 * 10))], sample_rate=22050)
    with pytest.raises(ValueError, match="shape"):
        audio_grid([("stereo", np.zeros((2, 100)))], sample_rate=22050)


def test_audio_grid_can_keep_relative_loudness():
    t = np.linspace(0, 0.2, 4410, endpoint=False)
    tone = np.sin(2 * np.pi * 220 * t)

    def markup(scale: float, normalize: bool) -> str:
        return audio_grid([("tone", scale * tone)], sample_rate=22050, normalize=normalize)._repr_html_()

    assert markup(0.8, normalize=True) == markup(0.1, normalize=True)  # scaled to full volume alike
    assert markup(0.8, normalize=False) != markup(0.1, normalize=False)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        audio_grid([("clipped", 2 * tone)], sample_rate=22050, normalize=False)


def test_widget_text_fallback_is_short():
    widget = audio_grid([("tone", np.ones(22050) * 0.1)], sample_rate=22050)
    assert len(repr(widget)) < 100 and len(widget._repr_html_()) > 10_000
