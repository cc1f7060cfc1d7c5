"""Small helpers every model in the library shares: counting parameters, evaluating without side effects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's parameters (its first parameter's: the models here live on one device)."""
    return next(model.parameters()).device


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (those with ``requires_grad``)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode for the ``with`` block, then give each back the mode it had.

    Every evaluation in the library runs inside it, so evaluating a model halfway through training never leaves
    it in eval mode (dropout off) for the rest of the run::

        with eval_mode(model), torch.no_grad():
            scores = model(x)
    """
    modes = [model.training for model in models]
    try:
        for model in models:
            model.eval()
        yield
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)
