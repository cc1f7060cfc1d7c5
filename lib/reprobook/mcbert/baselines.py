"""The baselines, BERT-MLM and ELECTRA, are objectives of the same :class:`~reprobook.mcbert.model.Pretrainer`
(``objective="mlm"`` / ``"electra"``); :func:`equal_compute` gives every objective the same pre-training FLOPs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from reprobook._validate import check_float
from reprobook.mcbert.model import OBJECTIVES
from reprobook.mcbert.train import MCBERTConfig, step_flops


def equal_compute(
    config: MCBERTConfig, vocab: int, flops: float | None = None, objectives: Sequence[str] = OBJECTIVES
) -> dict[str, MCBERTConfig]:
    """One config per objective, each with ``num_steps = round(flops / flops_per_step)`` (at least 1).

    ``flops``: the budget; default ``config.num_steps`` steps of BERT-MLM, the cheapest objective."""
    per_step = {o: sum(step_flops(replace(config, objective=o), vocab).values()) for o in objectives}
    if flops is None:
        flops = config.num_steps * sum(step_flops(replace(config, objective="mlm"), vocab).values())
    check_float("flops", flops, 0.0, open_low=True)
    return {o: replace(config, objective=o, num_steps=max(1, round(flops / per_step[o]))) for o in objectives}
