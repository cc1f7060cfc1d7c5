"""The real-network data of the chapter: scikit-learn's handwritten digits, bundled with the package (offline).

1,797 grey 8×8 images of the digits 0–9 (``sklearn.datasets.load_digits``; the UCI "optical recognition of
handwritten digits" test set), flattened to 64 pixel values scaled to ``[0, 1]``, split once, stratified by class,
into a training set and a held-out test set. The split depends only on ``config.split_seed``, so every run of a
comparison sees the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from reprobook._validate import check_choice

if TYPE_CHECKING:
    from reprobook.powerlaw.train import PowerLawConfig

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DigitsData:
    """``train_x`` ``(N, 64)`` float32 in ``[0, 1]``, ``train_y`` ``(N,)`` int64 labels 0–9; the same for test."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    name: str = "digits"

    def __post_init__(self) -> None:
        for split in SPLITS:
            x, y = self.split(split)
            if x.ndim != 2 or y.shape != (len(x),) or len(x) == 0:
                raise ValueError(f"{split} must be (N, F) features with (N,) labels, N > 0; got {x.shape}, {y.shape}")

    @property
    def num_features(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def num_classes(self) -> int:
        return int(max(self.train_y.max(), self.test_y.max())) + 1

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of ``"train"`` or ``"test"``."""
        check_choice("split", name, SPLITS)
        return (self.train_x, self.train_y) if name == "train" else (self.test_x, self.test_y)


def load_data(config: PowerLawConfig) -> DigitsData:
    """The digits, split into ``config.train_size`` training images and the rest for testing (stratified)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    if not 10 <= config.train_size <= len(x) - 10:
        raise ValueError(f"train_size={config.train_size} must leave at least 10 of the {len(x)} images on each side")
    train_index, test_index = train_test_split(
        torch.arange(len(x)).numpy(), train_size=config.train_size, stratify=y.numpy(), random_state=config.split_seed
    )
    return DigitsData(x[train_index], y[train_index], x[test_index], y[test_index])
