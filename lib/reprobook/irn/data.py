"""The images of an IRN run: training photos, validation centre crops, test photos; and the random training crops.

:func:`load_data` reads them offline by default: the scikit-image / scikit-learn photos of
:mod:`reprobook.data.images` (``TRAIN_IMAGES`` to train on, ``TEST_IMAGES`` held out), and with
``train_images="all"`` the packaged images that are not photos (:data:`EXTRA_IMAGES`). ``dataset="div2k"`` (the
``full`` profile) trains on the 800 DIV2K training photos, decoded lazily, and tests on Set5, as the paper does;
both download on first use only with ``REPROBOOK_ALLOW_DOWNLOAD=1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torch.utils.data import Dataset

from reprobook._validate import check_int
from reprobook.data import images

if TYPE_CHECKING:
    from reprobook.irn.train import IRNConfig


EXTRA_IMAGES: tuple[str, ...] = tuple(n for n in (*images.COLOR_IMAGES, *images.GRAY_IMAGES) if n not in images.PHOTOS)
"""The packaged images outside the photo split: three scientific colour images and seven grayscale photos and
textures. None is a test photo. IRN's short runs train on them beside the four photos (``train_images="all"``):
its inverse learns to cancel the fresh ``z`` only on content like its training crops, and with the four photos
alone IRN was level with the same-size SR CNN on average; with these added it was above it on every seed measured,
while the SR CNN gained nothing from them (``book/appendix/irn-seeds-cpu.txt``)."""


class IRNData(images.PhotoSplits):
    """The images of one IRN run (:class:`~reprobook.data.images.PhotoSplits`): DIV2K's photos for ``train`` are
    decoded lazily; ``test`` is mod-cropped to a multiple of the scale; ``valid`` holds centre crops of side
    ``config.val_side`` at most."""


def load_data(config: IRNConfig) -> IRNData:
    """The training images (the four photos, and :data:`EXTRA_IMAGES` if ``config.train_images == "all"``), the test
    photos mod-cropped to ``config.scale``, and their validation centre crops.

    Each validation crop is the central square of a test photo with side ``config.val_side`` (or the photo's
    shorter side if smaller), rounded down to a multiple of the scale.
    """
    scale = config.scale
    train: Sequence[Tensor]
    if config.dataset == "div2k":
        train, set5 = images.load_div2k("train"), images.load_set5()
        test, names = [images.crop_to_multiple(im, scale) for im in set5], [p.stem for p in set5.paths]
    else:
        extra = EXTRA_IMAGES if config.train_images == "all" else ()
        train = images.load_images((*images.TRAIN_IMAGES, *extra))
        test = [images.crop_to_multiple(im, scale) for im in images.load_images(images.TEST_IMAGES)]
        names = list(images.TEST_IMAGES)
    valid = [images.center_crop(im, min(config.val_side, *im.shape[-2:]) // scale * scale) for im in test]
    return IRNData(train=train, valid=valid, test=test, test_names=names)


BRIGHTNESS_RANGE = (0.3, 1.0)
"""Range of the random brightness factor of :class:`TrainingCrops` with ``colour=True``."""


class TrainingCrops(Dataset[Tensor]):
    """``num_crops`` random HR crops with flips and rotations; item ``i`` depends only on ``(seed, i)``.

    Each item picks a photo, a position, a horizontal flip and 0-3 quarter turns from NumPy's generator seeded
    with ``(seed, i)``, so crops are the same in every worker and every run. ``colour=True`` also shuffles the
    crop's RGB channels and scales it by a brightness factor drawn from :data:`BRIGHTNESS_RANGE` (a second
    generator, seeded with ``(seed, i, 1)``): four photos cover few colours and little dark content, and a network
    trained on them alone decodes unfamiliar colours badly. ``images`` may be a lazy sequence
    (:class:`~reprobook.data.images.ImageFiles`, e.g. DIV2K): each item decodes one image, so the dataset never
    holds more than a worker's current image.
    """

    def __init__(
        self, images: Sequence[Tensor], crop_size: int, num_crops: int, seed: int, colour: bool = False
    ) -> None:
        if len(images) == 0:
            raise ValueError("images is empty; expected training images of shape (3, H, W)")
        self.images = images
        self.crop_size = check_int("crop_size", crop_size, 1)
        self.num_crops = check_int("num_crops", num_crops, 0)
        self.seed = check_int("seed", seed)
        self.colour = colour

    def __len__(self) -> int:
        return self.num_crops

    def __getitem__(self, index: int) -> Tensor:
        rng = np.random.default_rng([self.seed, index])
        image = self.images[int(rng.integers(len(self.images)))]
        height, width = image.shape[-2:]
        if min(height, width) < self.crop_size:
            raise ValueError(f"crop_size={self.crop_size} does not fit an image of shape {tuple(image.shape)}")
        top, left = int(rng.integers(height - self.crop_size + 1)), int(rng.integers(width - self.crop_size + 1))
        crop = TF.crop(image, top, left, self.crop_size, self.crop_size)
        if rng.integers(2):
            crop = TF.horizontal_flip(crop)
        crop = torch.rot90(crop, int(rng.integers(4)), dims=(-2, -1))
        if self.colour:
            colour_rng = np.random.default_rng([self.seed, index, 1])
            crop = crop[torch.from_numpy(colour_rng.permutation(3))] * float(colour_rng.uniform(*BRIGHTNESS_RANGE))
        return crop.contiguous()
