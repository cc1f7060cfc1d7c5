"""Scores of a trained digits classifier: accuracy and loss on a split, and the sharpness of the training loss.

The *sharpness* is the largest eigenvalue of the Hessian of the mean training loss at the trained parameters, by
power iteration on Hessian-vector products (:func:`~reprobook.powerlaw.measure.top_eigen`): the curvature of the
basin the run ended in, whatever split is scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from reprobook.nn.utils import eval_mode
from reprobook.powerlaw.measure import top_eigen
from reprobook.train import Scores

if TYPE_CHECKING:
    from reprobook.powerlaw.data import DigitsData


@dataclass(kw_only=True)
class PowerLawScores(Scores):
    """``accuracy`` (fraction correct) and mean cross-entropy ``loss`` on the split; ``sharpness``: the top
    eigenvalue of the training-loss Hessian (NaN when not computed)."""

    accuracy: float
    loss: float
    sharpness: float = math.nan

    def row(self) -> dict[str, Any]:
        return {"method": self.label, "accuracy": self.accuracy, "loss": self.loss, "sharpness": self.sharpness}


def evaluate(
    model: nn.Module, data: DigitsData, split: str = "test", *, sharpness: bool = True, label: str = ""
) -> PowerLawScores:
    """Accuracy and loss of ``model`` on ``split`` (``"train"`` or ``"test"``), and with ``sharpness`` the top
    Hessian eigenvalue of the training loss; under :func:`~reprobook.nn.eval_mode`."""
    x, y = data.split(split)
    with eval_mode(model):
        with torch.no_grad():
            logits = model(x)
        accuracy = float((logits.argmax(1) == y).float().mean())
        loss = float(F.cross_entropy(logits, y))
        top = top_eigen(model, *data.split("train")).value if sharpness else math.nan
    return PowerLawScores(label=label, accuracy=accuracy, loss=loss, sharpness=top)
