"""The real network of the chapter and the noise that the large-batch experiment adds to SGD.

:class:`MLP` is a small fully connected classifier, trained with cross-entropy. :func:`noisy_sgd_step` is plain
SGD plus an optional isotropic Gaussian kick of chosen *power* ``v`` (its expected squared norm over ``η²``)::

    θ <- θ - η g_B + η sqrt(v / P) ξ,        ξ ~ N(0, I_P),   P = number of parameters

with ``v = σ²`` (constant noise) or ``v = σ² L_B(θ)`` (state-dependent noise: it grows with the mini-batch loss, as
SGD's own noise does near a minimum, Mori et al., Eq. 13). This computable form is the book's proposal: Meng et
al.'s abstract says that they add state-dependent noise to large-batch SGD, but the project could not read how.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from reprobook._validate import check_float, check_int


class MLP(nn.Module):
    """``features -> hidden[0] -> ... -> classes``, ReLU between layers; returns logits ``(B, classes)``."""

    def __init__(self, num_features: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        check_int("num_features", num_features, 1)
        check_int("num_classes", num_classes, 2)
        if not hidden:
            raise ValueError("hidden must name at least one layer width")
        widths = [num_features, *hidden]
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            check_int("hidden", width_out, 1)
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


@torch.no_grad()
def noisy_sgd_step(
    params: Sequence[Tensor], lr: float, noise_power: float, generator: torch.Generator | None = None
) -> None:
    """One SGD update of ``params`` from their ``.grad``, plus the kick ``η sqrt(v / P) ξ`` of power
    ``v = noise_power`` (module docstring; ``0``: plain SGD)."""
    check_float("lr", lr, 0, open_low=True)
    check_float("noise_power", noise_power, 0)
    total = sum(p.numel() for p in params)
    scale = lr * math.sqrt(noise_power / total) if total else 0.0
    for p in params:
        if p.grad is None:
            continue
        p.add_(p.grad, alpha=-lr)
        if scale > 0:
            noise = torch.randn(p.shape, generator=generator, dtype=p.dtype, device="cpu").to(p.device)
            p.add_(noise, alpha=scale)
