"""What MAT is compared with: a Transformer given MAT's extra parameters as a wider FFN, and the ablations.

The paper compares MAT with Transformers of (nearly) the same parameter count, not the same shape; the official
code's README does the same with a wider FFN. Every baseline here is a :class:`~reprobook.mat.train.MATConfig`,
so it trains and evaluates through the same :func:`~reprobook.mat.train.train` and
:func:`~reprobook.mat.evaluate.evaluate` as MAT.
"""

from __future__ import annotations

from dataclasses import replace

from reprobook.mat.train import MATConfig


def matched_transformer(config: MATConfig) -> MATConfig:
    """The Transformer (``N_a = 1``) with as many parameters as the MAT of ``config``, up to biases.

    MAT's extra branches cost ``(N_a - 1) * 4 d^2`` per attention; the baseline spends them on a wider FFN
    (``2 d`` per unit of width): ``+ (N_a - 1) * 2 d`` in the encoder (one attention per layer) and
    ``+ (N_a - 1) * 4 d`` in the decoder (two). Biases make the match approximate; print the counts.
    """
    extra = (config.num_branches - 1) * 2 * config.d_model
    return replace(
        config,
        num_branches=1,
        drop_branch=0.0,
        proximal_steps=0,
        ffn_dim=config.ffn_dim + extra,
        decoder_ffn_dim=(config.decoder_ffn_dim or config.ffn_dim) + 2 * extra,
    )


def matched_configs(base: MATConfig) -> dict[str, MATConfig]:
    """The chapter's four runs at (nearly) equal parameter count, by name: the matched Transformer, MAT without
    drop-branch, MAT with ``base``'s drop-branch rate, and MAT with proximal initialisation (``base``'s
    ``proximal_steps``, else half the updates)."""
    if base.drop_branch <= 0:
        raise ValueError(
            f"base.drop_branch must be > 0, got {base.drop_branch!r}: matched_configs compares MAT with drop-branch "
            "against MAT without it"
        )
    return {
        "Transformer": matched_transformer(base),
        "MAT, rho=0": replace(base, drop_branch=0.0, proximal_steps=0),
        f"MAT, rho={base.drop_branch:g}": replace(base, proximal_steps=0),
        "MAT + proximal init": replace(base, proximal_steps=base.proximal_steps or base.num_steps // 2),
    }
