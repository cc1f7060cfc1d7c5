"""The images of an ILC run: training photos for random crops, held-out test photos for every reported number.

Offline by default: :data:`reprobook.data.images.TRAIN_IMAGES` to train on, :data:`~reprobook.data.images.TEST_IMAGES`
held out, each cropped to a multiple of the codec's downsampling (and, with ``config.test_side``, to a centre
square of that side, for quick profiles). ``dataset="kodak"`` (the ``full`` profile) tests on the 24 Kodak photos,
downloaded only with ``REPROBOOK_ALLOW_DOWNLOAD=1``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from torch import Tensor
from torch.utils.data import DataLoader

from reprobook.data import images

if TYPE_CHECKING:
    from reprobook.ilc.train import ILCConfig


class ILCData(images.PhotoSplits):
    """The images of one ILC run (:class:`~reprobook.data.images.PhotoSplits`): ``test`` photos have ``H, W``
    divisible by the codec's downsampling; ``valid`` holds their centre crops (the training curve)."""


def load_data(config: ILCConfig) -> ILCData:
    """Training photos, test photos cropped to a multiple of ``2^levels`` (or centre squares of ``test_side``)."""
    factor = 2**config.levels
    train = images.load_images(images.TRAIN_IMAGES)
    if config.dataset == "kodak":
        kodak = images.load_kodak()
        test, names = [kodak[i] for i in range(len(kodak))], [p.stem for p in kodak.paths]
    else:
        test, names = images.load_images(images.TEST_IMAGES), list(images.TEST_IMAGES)
    if config.test_side is not None:
        test = [images.center_crop(im, min(config.test_side, *im.shape[-2:])) for im in test]
    test = [images.crop_to_multiple(im, factor) for im in test]
    valid = [images.center_crop(im, min(config.val_side, *im.shape[-2:]) // factor * factor) for im in test]
    return ILCData(train=train, valid=valid, test=test, test_names=names)


def training_batches(data: ILCData, config: ILCConfig) -> Iterable[Tensor]:
    """``num_steps`` batches of random ``crop_size`` crops (flips and quarter turns), fixed by ``config.seed``."""
    crops = images.RandomCropDataset(
        data.train, config.crop_size, config.num_steps * config.batch_size, config.seed, augment=True
    )
    return DataLoader(crops, batch_size=config.batch_size, shuffle=False)
