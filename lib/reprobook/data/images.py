"""Natural photos that work offline, crops of them, and opt-in loaders for the benchmark datasets.

**Offline images.** scikit-image and scikit-learn ship a handful of photos inside their wheels, so
these load with no network at all. :func:`load_image` returns any of :data:`IMAGE_NAMES` as a
``(3, H, W)`` float32 tensor in ``[0, 1]``; the grayscale ones (:data:`GRAY_IMAGES`) are replicated
to three channels so every image has the same layout. Left out on purpose: ``cat`` (the same
pixels as ``chelsea``), ``colorwheel`` (synthetic), and ``eagle``, ``lily``, ``kidney``, ``skin``,
``brain`` (scikit-image fetches those from the network).

**The fixed split.** Super-resolution and rescaling chapters train on crops of
:data:`TRAIN_IMAGES` and report numbers on the whole of :data:`TEST_IMAGES`; the two never overlap.
Both hold only colour photographs of everyday scenes (:data:`PHOTOS`), the closest offline stand-in
for DIV2K:

===========  =====================================================================
train        ``chelsea`` (cat, 300x451), ``rocket`` (427x640), ``motorcycle`` (left view of
             ``stereo_motorcycle``, 500x741), ``china`` (temple, 427x640, scikit-learn)
test         ``astronaut`` (portrait, 512x512), ``coffee`` (400x600), ``flower`` (427x640,
             scikit-learn)
===========  =====================================================================

The scientific colour images (``hubble_deep_field``, ``retina``, ``immunohistochemistry``) are in
:data:`COLOR_IMAGES` but not in the split: their statistics are far from everyday photos.

**Crops.** :func:`random_crops` draws ``(N, 3, s, s)`` patches deterministically from a seed,
:class:`RandomCropDataset` does the same lazily for a ``DataLoader``; :func:`center_crop` and
:func:`crop_to_multiple` prepare whole images for evaluation (invertible rescaling needs ``H`` and
``W`` divisible by the scale).

**Real datasets (opt-in).** :func:`load_div2k`, :func:`load_set5`, :func:`load_set14` and
:func:`load_kodak` download through :mod:`reprobook.data.download` only after the reader opts in
(``download=True`` or ``REPROBOOK_ALLOW_DOWNLOAD=1``); the book never calls them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import overload

import numpy as np
import skimage.data
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image

from reprobook._validate import check_choice, check_fits_in_memory, check_int
from reprobook.data.download import fetch_dataset

PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "china", "flower")
"""Colour photographs of everyday scenes; :data:`TRAIN_IMAGES` and :data:`TEST_IMAGES` split them."""

COLOR_IMAGES: tuple[str, ...] = (*PHOTOS, "hubble_deep_field", "retina", "immunohistochemistry")
"""Every colour image: the photos plus three scientific images (telescope, fundus, microscope)."""

GRAY_IMAGES: tuple[str, ...] = ("camera", "coins", "brick", "grass", "gravel", "moon", "clock")
"""Grayscale photos and textures; :func:`load_image` replicates them to three channels."""

IMAGE_NAMES: tuple[str, ...] = COLOR_IMAGES + GRAY_IMAGES
"""Every name :func:`load_image` accepts."""

TEST_IMAGES: tuple[str, ...] = ("astronaut", "coffee", "flower")
"""Held-out photos: evaluate on these, never train on them."""

TRAIN_IMAGES: tuple[str, ...] = tuple(name for name in PHOTOS if name not in TEST_IMAGES)
"""Training photos: ``chelsea``, ``rocket``, ``motorcycle``, ``china``."""

DIV2K_SCALES = (2, 3, 4)
"""Downscaling factors of the bicubic low-resolution DIV2K images."""

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        image = getattr(skimage.data, name)()
        return image[0] if isinstance(image, tuple) else image  # stereo pairs: the left view

    return read


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    """Read a photo of ``sklearn.datasets.load_sample_image`` the way it does (PIL), but without
    importing ``sklearn.datasets``, which takes seconds."""

    def read() -> np.ndarray:
        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("scikit-learn is not installed; it ships the photo " + filename)
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / filename
        with Image.open(path) as photo:
            return np.asarray(photo)

    return read


_READERS: dict[str, Callable[[], np.ndarray]] = {
    **{name: _skimage(name) for name in IMAGE_NAMES if name not in {"motorcycle", "china", "flower"}},
    "motorcycle": _skimage("stereo_motorcycle"),
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
}


@cache
def _read_uint8(name: str) -> np.ndarray:
    """The raw ``(H, W)`` or ``(H, W, 3)`` uint8 array; cached, never handed out (callers copy)."""
    return _READERS[name]()


def load_image(name: str) -> Tensor:
    """Load an offline image by name: ``(3, H, W)`` float32 in ``[0, 1]``.

    Grayscale images are replicated to three identical channels. Each call returns a fresh tensor,
    so editing it in place never changes the next call's result.
    """
    check_choice("name", name, IMAGE_NAMES)
    array = _read_uint8(name)
    image = torch.from_numpy(array.astype(np.float32)).div_(255.0)
    if image.ndim == 2:
        return image.expand(3, -1, -1).contiguous()
    return image.permute(2, 0, 1).contiguous()


def load_images(names: Sequence[str] = TRAIN_IMAGES) -> list[Tensor]:
    """Load several images with :func:`load_image`; each ``(3, H_i, W_i)``, sizes differ."""
    return [load_image(name) for name in names]


def read_image(path: str | os.PathLike[str]) -> Tensor:
    """Decode a PNG or JPEG file into ``(3, H, W)`` float32 in ``[0, 1]`` (grayscale -> 3 channels)."""
    return decode_image(str(path), mode=ImageReadMode.RGB).to(torch.float32).div_(255.0)


def _as_image_list(images: Sequence[Tensor] | Tensor) -> list[Tensor]:
    if isinstance(images, Tensor):
        if images.ndim == 3:
            return [images]
        if images.ndim == 4:
            return list(images.unbind(0))
        raise ValueError(f"images must be (C, H, W) or (N, C, H, W), got shape {tuple(images.shape)}")
    image_list = list(images)
    if not image_list:
        raise ValueError("images is empty; expected at least one (C, H, W) tensor")
    for i, image in enumerate(image_list):
        if not isinstance(image, Tensor) or image.ndim != 3:
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"images[{i}] must be a (C, H, W) tensor, got {shape}")
    return image_list


def _check_crop_fits(images: list[Tensor], crop_size: int) -> None:
    if not isinstance(crop_size, int) or crop_size < 1:
        raise ValueError(f"crop_size must be a positive integer, got {crop_size!r}")
    for i, image in enumerate(images):
        height, width = image.shape[-2:]
        if crop_size > min(height, width):
            raise ValueError(
                f"crop_size={crop_size} does not fit in images[{i}] of shape {tuple(image.shape)}; "
                f"expected crop_size <= {min(height, width)}"
            )


def _random_crop(images: list[Tensor], crop_size: int, generator: torch.Generator, augment: bool) -> Tensor:
    """One ``(C, s, s)`` crop: a uniformly chosen image, then a uniformly chosen position."""
    image = images[int(torch.randint(len(images), (1,), generator=generator))]
    height, width = image.shape[-2:]
    top = int(torch.randint(height - crop_size + 1, (1,), generator=generator))
    left = int(torch.randint(width - crop_size + 1, (1,), generator=generator))
    crop = TF.crop(image, top, left, crop_size, crop_size)
    if augment:
        flip, quarter_turns = torch.randint(2, (1,), generator=generator), torch.randint(4, (1,), generator=generator)
        if flip:
            crop = TF.horizontal_flip(crop)
        crop = torch.rot90(crop, int(quarter_turns), dims=(-2, -1))
    return crop


def random_crops(
    images: Sequence[Tensor] | Tensor, crop_size: int, num_crops: int, seed: int, *, augment: bool = False
) -> Tensor:
    """Draw ``num_crops`` square crops: ``(num_crops, C, crop_size, crop_size)``.

    ``images`` is a list of ``(C, H_i, W_i)`` tensors (sizes may differ), one ``(C, H, W)`` tensor or
    an ``(N, C, H, W)`` batch. Each crop picks an image uniformly, then a position uniformly, from
    a ``torch.Generator`` seeded with ``seed``: the same arguments always give the same crops.
    ``augment=True`` also applies a random element of the dihedral group (horizontal flip, then
    0-3 quarter turns), the usual super-resolution augmentation.
    """
    image_list = _as_image_list(images)
    _check_crop_fits(image_list, crop_size)
    check_int("num_crops", num_crops, 0)
    check_fits_in_memory("num_crops", num_crops, num_crops * image_list[0].shape[0] * crop_size**2 * 4)
    generator = torch.Generator().manual_seed(seed)
    crops = [_random_crop(image_list, crop_size, generator, augment) for _ in range(num_crops)]
    if not crops:
        return image_list[0].new_empty(0, image_list[0].shape[0], crop_size, crop_size)
    return torch.stack(crops)


class RandomCropDataset(Dataset[Tensor]):
    """``num_crops`` random crops of ``images``, drawn lazily: item ``i`` is ``(C, s, s)``.

    Item ``i`` depends only on ``(seed, epoch, i)``, so it is the same in every worker and every run.
    Call :meth:`set_epoch` at the start of each epoch for fresh crops (as with
    ``DistributedSampler``); without it every epoch sees the same ``num_crops`` crops.
    """

    def __init__(
        self, images: Sequence[Tensor] | Tensor, crop_size: int, num_crops: int, seed: int, *, augment: bool = False
    ) -> None:
        self.images = _as_image_list(images)
        _check_crop_fits(self.images, crop_size)
        if num_crops < 0:
            raise ValueError(f"num_crops must be >= 0, got {num_crops}")
        self.crop_size, self.num_crops, self.seed, self.augment = crop_size, num_crops, seed, augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a different set of crops from now on."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_crops

    def __getitem__(self, index: int) -> Tensor:
        if not 0 <= index < self.num_crops:
            raise IndexError(f"index {index} is out of range for {self.num_crops} crops")
        item_seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(item_seed)
        return _random_crop(self.images, self.crop_size, generator, self.augment)


PHOTO_SPLITS = ("train", "valid", "test")


@dataclass
class PhotoSplits:
    """The images of one image-restoration run, each ``(3, H, W)`` in ``[0, 1]`` (base of the methods' data).

    ``train``: the photos that random crops are drawn from (may be a lazy :class:`ImageFiles`); ``test``: the
    held-out photos, named by ``test_names``; ``valid``: centre crops of the test photos, for the validation curve.
    """

    train: Sequence[Tensor]
    valid: list[Tensor]
    test: list[Tensor]
    test_names: list[str]

    def __post_init__(self) -> None:
        for name in PHOTO_SPLITS:
            if len(getattr(self, name)) == 0:
                raise ValueError(f"{type(self).__name__}.{name} is empty; expected at least one (3, H, W) image")
        if len(self.test_names) != len(self.test):
            raise ValueError(f"test_names has {len(self.test_names)} entries but test has {len(self.test)} images")

    def split(self, name: str) -> tuple[Sequence[Tensor], tuple[str, ...]]:
        """The images of split ``name`` (``train``, ``valid`` or ``test``) and their names."""
        check_choice("split", name, PHOTO_SPLITS)
        if name == "train":
            return self.train, tuple(f"train {i}" for i in range(len(self.train)))
        return getattr(self, name), tuple(self.test_names)


def center_crop(image: Tensor, size: int | tuple[int, int]) -> Tensor:
    """The central ``(..., h, w)`` window of ``image`` ``(..., H, W)``; ``size`` is ``s`` or ``(h, w)``."""
    height, width = (size, size) if isinstance(size, int) else size
    if not (0 < height <= image.shape[-2] and 0 < width <= image.shape[-1]):
        raise ValueError(
            f"size={size!r} does not fit in image of shape {tuple(image.shape)}; "
            f"expected 0 < size <= {tuple(image.shape[-2:])}"
        )
    return TF.center_crop(image, [height, width])


def detail_window(image: Tensor, side: int) -> tuple[int, int, int, int]:
    """The ``side x side`` window of ``image`` ``(C, H, W)`` with the most detail, as ``(top, left, side, side)``.

    Detail is the summed absolute difference between neighbouring pixels; windows are scanned with a stride of
    ``side // 4``. For zoomed comparisons: a fixed window (say the centre) may land on flat background, where every
    codec looks the same.
    """
    if image.ndim != 3 or not 0 < side <= min(image.shape[-2:]):
        raise ValueError(f"side={side} must fit image (C, H, W), got shape {tuple(image.shape)}")
    gray = image.float().mean(0)
    detail = torch.zeros_like(gray)
    detail[:, 1:] += (gray[:, 1:] - gray[:, :-1]).abs()
    detail[1:, :] += (gray[1:, :] - gray[:-1, :]).abs()
    stride = max(1, side // 4)
    energy = torch.nn.functional.avg_pool2d(detail[None, None], side, stride=stride)[0, 0]
    row, col = divmod(int(energy.argmax()), energy.shape[1])
    return row * stride, col * stride, side, side


def crop_to_multiple(image: Tensor, multiple: int) -> Tensor:
    """Drop the last rows and columns so ``H`` and ``W`` are divisible by ``multiple``.

    ``(..., H, W) -> (..., H - H % m, W - W % m)``: the ``modcrop`` of super-resolution code, which
    keeps the top-left corner so that pixel grids of the high- and low-resolution images align.
    """
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be a positive integer, got {multiple!r}")
    height, width = image.shape[-2:]
    if height < multiple or width < multiple:
        raise ValueError(f"image of shape {tuple(image.shape)} is smaller than multiple={multiple}")
    return image[..., : height - height % multiple, : width - width % multiple]


class ImageFiles(Sequence[Tensor]):
    """A list of image files that decodes on access: ``files[i]`` is ``(3, H_i, W_i)`` in ``[0, 1]``.

    DIV2K at full size is tens of gigabytes as float tensors, so the real-dataset loaders return
    this lazy sequence; ``list(files)`` loads everything, ``files.paths`` lists the files.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, index: int) -> Tensor: ...

    @overload
    def __getitem__(self, index: slice) -> ImageFiles: ...

    def __getitem__(self, index: int | slice) -> Tensor | ImageFiles:
        if isinstance(index, slice):
            return ImageFiles(self.paths[index])
        return read_image(self.paths[index])

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} files)"


def _image_files(name: str, download: bool, cache: str | os.PathLike[str] | None) -> ImageFiles:
    """The images of a registered dataset: files as listed, extracted folders in sorted order."""
    ready = fetch_dataset(name, download=download, cache=cache)
    paths: list[Path] = []
    for path in ready:
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
        else:
            paths.append(path)
    if not paths:
        listed = ", ".join(str(path) for path in ready)
        raise RuntimeError(f"dataset {name!r} has no images in {listed}; delete these and load again")
    return ImageFiles(paths)


def load_div2k(
    split: str = "valid",
    scale: int | None = None,
    *,
    download: bool = False,
    cache: str | os.PathLike[str] | None = None,
) -> ImageFiles:
    """DIV2K (NTIRE 2017): 800 ``train`` or 100 ``valid`` 2K photos, decoded lazily.

    ``scale=None`` gives the high-resolution images; ``scale`` in ``(2, 3, 4)`` gives the official
    bicubic low-resolution ones, in the same order, so ``load_div2k(s)[i]`` and
    ``load_div2k(s, 4)[i]`` are a pair. Downloads (3.5 GB train HR, 0.45 GB valid HR) need
    ``download=True`` or ``REPROBOOK_ALLOW_DOWNLOAD=1``.
    """
    check_choice("split", split, ("train", "valid"))
    if scale is not None:
        check_choice("scale", scale, DIV2K_SCALES)
    name = f"div2k_{split}_hr" if scale is None else f"div2k_{split}_lr_x{scale}"
    return _image_files(name, download, cache)


def load_set5(*, download: bool = False, cache: str | os.PathLike[str] | None = None) -> ImageFiles:
    """Set5 (Bevilacqua et al. 2012): 5 high-resolution test images, alphabetical order. Opt-in download."""
    return _image_files("set5", download, cache)


def load_set14(*, download: bool = False, cache: str | os.PathLike[str] | None = None) -> ImageFiles:
    """Set14 (Zeyde et al. 2010): 14 high-resolution test images, grayscale ones as 3 channels. Opt-in."""
    return _image_files("set14", download, cache)


def load_kodak(*, download: bool = False, cache: str | os.PathLike[str] | None = None) -> ImageFiles:
    """Kodak Lossless True Color suite: 24 photos of 768x512 or 512x768, ``kodim01`` first. Opt-in."""
    return _image_files("kodak", download, cache)
