"""What dual learning is compared with: the same translators trained on the seed dictionaries alone.

Every system of the chapter is a :class:`~reprobook.dual.train.DualConfig` with one field changed, so all three train
on the same world, from the same supervised warm start, for the same number of steps:
"""

from __future__ import annotations

from dataclasses import replace

from reprobook.dual.train import METHODS, DualConfig


def supervised(config: DualConfig) -> DualConfig:
    """The baseline (a): ``config`` trained on its seed dictionaries only, with the same budget."""
    return replace(config, method="supervised")


def three_systems(base: DualConfig) -> dict[str, DualConfig]:
    """(a) supervised, (b) standard dual and (c) multi-step on ``base``'s world and recipe, by label."""
    configs = [replace(base, method=method) for method in METHODS]
    return {config.label: config for config in configs}
