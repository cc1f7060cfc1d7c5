"""Offline photos, the fixed train/test split, deterministic crops, and opt-in refusal."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from torch.utils.data import DataLoader
from torchvision.io import write_png

from reprobook.data import images
from reprobook.data.download import ALLOW_ENV, DATA_ENV, DownloadNotAllowedError
from reprobook.data.images import (
    COLOR_IMAGES,
    GRAY_IMAGES,
    IMAGE_NAMES,
    PHOTOS,
    TEST_IMAGES,
    TRAIN_IMAGES,
    ImageFiles,
    RandomCropDataset,
    center_crop,
    crop_to_multiple,
    load_image,
    load_images,
    random_crops,
    read_image,
)


def _coordinate_image(height: int, width: int) -> torch.Tensor:
    """``(3, H, W)`` whose channel 0 is the row index and channel 1 the column index."""
    rows = torch.arange(height, dtype=torch.float32).view(-1, 1).expand(height, width)
    cols = torch.arange(width, dtype=torch.float32).view(1, -1).expand(height, width)
    return torch.stack([rows, cols, torch.zeros(height, width)])


def _dihedral(window: torch.Tensor) -> list[torch.Tensor]:
    flips = [window, torch.flip(window, dims=(-1,))]
    return [torch.rot90(w, k, dims=(-2, -1)) for w in flips for k in range(4)]


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_every_image_loads_as_rgb_float(name: str) -> None:
    image = load_image(name)
    assert image.ndim == 3 and image.shape[0] == 3
    assert image.dtype == torch.float32 and image.is_contiguous()
    assert image.min().item() >= 0.0 and image.max().item() <= 1.0
    assert image.max().item() > 0.5  # really scaled by 1/255, not by 1/255**2 or left at 0..255
    if name in GRAY_IMAGES:
        assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    else:
        assert not torch.equal(image[0], image[1])


def test_pixels_match_the_source_arrays() -> None:
    expected = torch.tensor(skimage.data.astronaut()[10, 20], dtype=torch.float32)
    torch.testing.assert_close(load_image("astronaut")[:, 10, 20] * 255, expected)
    left = skimage.data.stereo_motorcycle()[0]
    assert load_image("motorcycle").shape == (3, *left.shape[:2])
    np.testing.assert_allclose(load_image("motorcycle").permute(1, 2, 0).numpy() * 255, left, atol=1e-3)
    assert load_image("camera")[0, 0, 0].item() * 255 == pytest.approx(float(skimage.data.camera()[0, 0]), abs=1e-3)


def test_sklearn_photos_match_load_sample_image() -> None:
    from sklearn.datasets import load_sample_image

    for name in ("china", "flower"):
        expected = torch.from_numpy(load_sample_image(f"{name}.jpg").astype(np.float32)).permute(2, 0, 1) / 255
        torch.testing.assert_close(load_image(name), expected)


def test_each_call_returns_a_fresh_tensor() -> None:
    first = load_image("coffee")
    first.zero_()
    assert load_image("coffee").max().item() > 0


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"name='lena'.*'astronaut'.*'flower'"):
        load_image("lena")


def test_split_is_fixed_disjoint_and_colour_photos_only() -> None:
    assert TEST_IMAGES == ("astronaut", "coffee", "flower")
    assert TRAIN_IMAGES == ("chelsea", "rocket", "motorcycle", "china")
    assert not set(TRAIN_IMAGES) & set(TEST_IMAGES)
    assert set(TRAIN_IMAGES) | set(TEST_IMAGES) == set(PHOTOS)
    assert set(PHOTOS) <= set(COLOR_IMAGES)
    assert not set(COLOR_IMAGES) & set(GRAY_IMAGES)
    assert len(load_images()) == len(TRAIN_IMAGES)


def test_random_crops_are_windows_of_the_images() -> None:
    sources = [_coordinate_image(20, 30), _coordinate_image(17, 17)]
    crops = random_crops(sources, crop_size=8, num_crops=40, seed=0)
    assert crops.shape == (40, 3, 8, 8)
    for crop in crops:
        top, left = int(crop[0].min()), int(crop[1].min())
        assert torch.equal(crop[0], torch.arange(top, top + 8.0).view(-1, 1).expand(8, 8))
        assert torch.equal(crop[1], torch.arange(left, left + 8.0).view(1, -1).expand(8, 8))
    assert len({(int(c[0, 0, 0]), int(c[1, 0, 0])) for c in crops}) > 20  # positions vary


def test_random_crops_reach_every_position_including_the_full_image() -> None:
    source = _coordinate_image(10, 10)
    crops = random_crops(source, 8, 200, seed=0)
    positions = {(int(c[0, 0, 0]), int(c[1, 0, 0])) for c in crops}
    assert positions == {(top, left) for top in range(3) for left in range(3)}
    assert torch.equal(random_crops(source, 10, 2, seed=0), torch.stack([source, source]))


def test_random_crops_are_deterministic_per_seed() -> None:
    photos = load_images(("chelsea", "rocket"))
    a = random_crops(photos, 32, 6, seed=3)
    assert torch.equal(a, random_crops(photos, 32, 6, seed=3))
    assert not torch.equal(a, random_crops(photos, 32, 6, seed=4))
    assert a.dtype == torch.float32


def test_random_crops_accepts_single_image_batch_and_zero_crops() -> None:
    image = _coordinate_image(12, 12)
    assert random_crops(image, 4, 3, seed=0).shape == (3, 3, 4, 4)
    assert random_crops(torch.stack([image, image]), 4, 3, seed=0).shape == (3, 3, 4, 4)
    assert random_crops(image, 4, 0, seed=0).shape == (0, 3, 4, 4)


def test_augment_applies_dihedral_transforms_of_a_window() -> None:
    source = _coordinate_image(16, 16)
    crops = random_crops(source, 6, 60, seed=1, augment=True)
    transforms_used = set()
    for crop in crops:
        top, left = int(crop[0].min()), int(crop[1].min())
        window = source[:, top : top + 6, left : left + 6]
        matches = [i for i, candidate in enumerate(_dihedral(window)) if torch.equal(crop, candidate)]
        assert matches, "an augmented crop must be a flip/rotation of a window"
        transforms_used.add(matches[0])
    assert len(transforms_used) >= 6


def test_crop_size_must_fit_every_image() -> None:
    with pytest.raises(ValueError, match=r"crop_size=18 does not fit in images\[1\] of shape \(3, 17, 17\)"):
        random_crops([_coordinate_image(20, 30), _coordinate_image(17, 17)], 18, 1, seed=0)
    with pytest.raises(ValueError, match="crop_size must be a positive integer"):
        random_crops(_coordinate_image(8, 8), 0, 1, seed=0)
    with pytest.raises(ValueError, match="num_crops"):
        random_crops(_coordinate_image(8, 8), 4, -1, seed=0)
    with pytest.raises(ValueError, match=r"images\[0\] must be a \(C, H, W\) tensor"):
        random_crops([torch.zeros(8, 8)], 4, 1, seed=0)
    with pytest.raises(ValueError, match="images is empty"):
        random_crops([], 4, 1, seed=0)


def test_random_crop_dataset_is_deterministic_and_epoch_dependent() -> None:
    dataset = RandomCropDataset(load_images(("chelsea",)), crop_size=16, num_crops=5, seed=0)
    assert len(dataset) == 5
    first = dataset[2]
    assert first.shape == (3, 16, 16)
    assert torch.equal(first, RandomCropDataset(load_images(("chelsea",)), 16, 5, seed=0)[2])
    assert not torch.equal(first, dataset[3])
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[2])
    batch = next(iter(DataLoader(dataset, batch_size=5)))
    assert batch.shape == (5, 3, 16, 16)
    with pytest.raises(IndexError):
        dataset[5]
    with pytest.raises(ValueError, match="crop_size=400"):
        RandomCropDataset(load_images(("chelsea",)), 400, 5, seed=0)


def test_center_crop_takes_the_middle() -> None:
    source = _coordinate_image(9, 12)
    crop = center_crop(source, (3, 4))
    assert crop.shape == (3, 3, 4)
    assert (int(crop[0, 0, 0]), int(crop[1, 0, 0])) == (3, 4)
    assert center_crop(source, 9).shape == (3, 9, 9)
    with pytest.raises(ValueError, match=r"size=10 does not fit in image of shape \(3, 9, 12\)"):
        center_crop(source, 10)


def test_detail_window_finds_the_textured_patch_on_a_flat_background() -> None:
    image = torch.zeros(3, 64, 80)
    image[:, 32:48, 48:64] = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert images.detail_window(image, 16) == (32, 48, 16, 16)
    with pytest.raises(ValueError, match="side=65 must fit"):
        images.detail_window(image, 65)


def test_crop_to_multiple_keeps_the_top_left_corner() -> None:
    source = _coordinate_image(427, 640)
    cropped = crop_to_multiple(source, 4)
    assert cropped.shape == (3, 424, 640)
    assert torch.equal(cropped, source[:, :424, :640])
    assert crop_to_multiple(source.unsqueeze(0), 3).shape == (1, 3, 426, 639)
    with pytest.raises(ValueError, match="multiple must be a positive integer"):
        crop_to_multiple(source, 0)
    with pytest.raises(ValueError, match="smaller than multiple=500"):
        crop_to_multiple(source, 500)


def test_read_image_and_image_files(tmp_path) -> None:
    rgb = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    gray = torch.randint(0, 256, (1, 4, 6), dtype=torch.uint8)
    write_png(rgb, str(tmp_path / "a.png"))
    write_png(gray, str(tmp_path / "b.png"))
    torch.testing.assert_close(read_image(tmp_path / "a.png"), rgb.float() / 255)
    torch.testing.assert_close(read_image(tmp_path / "b.png"), gray.float().expand(3, -1, -1) / 255)
    files = ImageFiles([tmp_path / "a.png", tmp_path / "b.png"])
    assert len(files) == 2 and files[1].shape == (3, 4, 6)
    sliced = files[1:]
    assert isinstance(sliced, ImageFiles) and len(sliced) == 1
    assert [image.shape for image in files] == [(3, 5, 7), (3, 4, 6)]


@pytest.mark.parametrize(
    "loader",
    [
        lambda: images.load_div2k("valid"),
        lambda: images.load_div2k("train", scale=4),
        images.load_set5,
        images.load_set14,
        images.load_kodak,
    ],
)
def test_real_datasets_refuse_to_download_without_opt_in(loader, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(DownloadNotAllowedError, match=f"download=True.*{ALLOW_ENV}=1"):
        loader()
    assert not any(tmp_path.iterdir())


def test_refusal_says_what_opting_in_costs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(DownloadNotAllowedError, match=r"'kodak'.*24 missing file\(s\), 15\.4 MB"):
        images.load_kodak()
    with pytest.raises(DownloadNotAllowedError, match=r"'div2k_train_hr'.*1 missing file\(s\), 3,530\.6 MB"):
        images.load_div2k("train")


def test_load_div2k_validates_split_and_scale() -> None:
    with pytest.raises(ValueError, match=r"split='test'.*'train', 'valid'"):
        images.load_div2k("test")
    with pytest.raises(ValueError, match=r"scale=8.*2, 3, 4"):
        images.load_div2k("valid", scale=8)
