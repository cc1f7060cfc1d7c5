"""CoMMA (Sec. 3 of the paper): a Transformer whose decoder predicts masked target positions with one
mix-attention over source and target states, and the attention density ratio R(p) read off it.

* :func:`mask_targets` -- replace each target position by ``[MASK]`` with probability ``p`` (at least one);
* :class:`MixAttention` -- queries from the target states, keys and values from ``[H_src; H_tgt]``, one softmax,
  no causal mask (:func:`reprobook.kernels.mix_attention`, which also returns the target attention mass);
* :class:`CoMMA` -- encoder (source type embedding), decoder of mix-attention layers (target type embedding),
  token or frame output, and a length head for fully non-autoregressive decoding of token targets;
* :func:`density_ratio` -- ``R_i = (mass_i / N) / (1 / (N + M))``, averaged as documented there;
* :func:`comma_loss` -- cross-entropy (tokens) or L1 (frames) on masked positions, the length loss, and the
  optional alignment loss (KL from the known alignment to the source part of the attention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reprobook._validate import check_int
from reprobook.comma.data import Batch
from reprobook.kernels.mix_attention import mix_attention, mix_attention_weights
from reprobook.nn.transformer import EncoderLayer, FeedForward, MultiHeadAttention, padding_mask, sinusoidal_positions


def mask_targets(
    lengths: torch.Tensor, p: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bool ``(B, N)``: True where a target position is masked. Each real position is masked with probability
    ``p`` (a float or a ``(B,)`` tensor of per-sentence rates in [0, 1]); a sentence with none masked gets one
    masked position drawn uniformly, so every sentence predicts something. Padding is never masked. The draws come
    from ``generator`` on the CPU; the mask is returned on ``lengths``' device."""
    device, lengths = lengths.device, lengths.cpu()
    if lengths.ndim != 1 or lengths.numel() == 0 or int(lengths.min()) < 1:
        raise ValueError(f"lengths must be a non-empty (B,) tensor of target lengths >= 1, got {lengths.tolist()}")
    rate = torch.as_tensor(p, dtype=torch.float32, device="cpu").expand(lengths.shape[0])
    if not bool(((rate >= 0) & (rate <= 1)).all()):
        raise ValueError(f"p must lie in [0, 1], got {rate.tolist()}")
    real = ~padding_mask(lengths)
    draw = torch.rand(real.shape, generator=generator)
    masked = (draw < rate[:, None]) & real
    none = ~masked.any(1)
    if bool(none.any()):
        pick = (torch.rand(lengths.shape, generator=generator) * lengths).long()
        masked[none, pick[none]] = True
    return masked.to(device)


class MixAttention(nn.Module):
    """One multi-head attention of target queries over ``[source; target]`` keys and values, shared projections.

    ``forward(x (B, N, d), memory (B, M, d), src_pad, tgt_pad, need_weights) -> (out (B, N, d), mass (B, H, N),
    alpha (B, H, N, M + N) or None)``; ``alpha`` (differentiable) only with ``need_weights``.
    """

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.heads, self.d_k = num_heads, d_model // num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))

    def split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, self.d_k).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor, tgt_pad: torch.Tensor, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        q = self.split(self.q_proj(x))
        ks, vs = self.split(self.k_proj(memory)), self.split(self.v_proj(memory))
        kt, vt = self.split(self.k_proj(x)), self.split(self.v_proj(x))
        alpha = None
        if need_weights:
            alpha = mix_attention_weights(q, ks, kt, src_pad, tgt_pad)
            out = alpha @ torch.cat([vs, vt], dim=2)
            mass = alpha[..., ks.shape[2] :].sum(-1).detach()
        else:
            out, mass = mix_attention(q, ks, vs, kt, vt, src_pad, tgt_pad)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1)), mass, alpha


class MixDecoderLayer(nn.Module):
    """Post-LN: ``x = LN(x + Drop(MixAttn(x, [H_src; x])))``, ``x = LN(x + Drop(FFN(x)))``."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.attn, self.ffn = MixAttention(d_model, num_heads), FeedForward(d_model, d_ff)
        self.norm1, self.norm2, self.dropout = nn.LayerNorm(d_model), nn.LayerNorm(d_model), dropout

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor, tgt_pad: torch.Tensor, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        attended, mass, alpha = self.attn(x, memory, src_pad, tgt_pad, need_weights)
        x = self.norm1(x + F.dropout(attended, self.dropout, self.training))
        return self.norm2(x + F.dropout(self.ffn(x), self.dropout, self.training)), mass, alpha


@dataclass
class Sizes:
    """Sizes of the networks: vocabularies (0 = frames) or feature dimensions, width, heads, layers."""

    src_vocab: int
    tgt_vocab: int
    src_dim: int
    tgt_dim: int
    d_model: int = 96
    num_heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.1
    max_len: int = 512


class SourceEncoder(nn.Module):
    """Source prenet (embedding, or a linear map of stacked frames) + positions + type embedding + encoder."""

    positions: torch.Tensor

    def __init__(self, s: Sizes) -> None:
        super().__init__()
        self.d = s.d_model
        self.prenet: nn.Module = (
            nn.Embedding(s.src_vocab, s.d_model) if s.src_vocab else nn.Linear(s.src_dim, s.d_model)
        )
        self.type_embed = nn.Embedding(2, s.d_model)  # 0: source, 1: target
        self.register_buffer("positions", sinusoidal_positions(s.max_len, s.d_model), persistent=False)
        make = lambda: MultiHeadAttention(s.d_model, s.num_heads)  # noqa: E731
        self.layers = nn.ModuleList(EncoderLayer(s.d_model, s.d_ff, make, s.dropout) for _ in range(s.encoder_layers))
        self.dropout = s.dropout

    def embed(self, x: torch.Tensor, kind: int) -> torch.Tensor:
        if x.shape[1] > self.positions.shape[0]:
            raise ValueError(f"sequences of {x.shape[1]} positions exceed max_len={self.positions.shape[0]}")
        return x * math.sqrt(self.d) + self.positions[: x.shape[1]] + self.type_embed.weight[kind]

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(H_src (B, M, d), src_pad (B, M))``."""
        if int(src_len.min()) < 1:
            raise ValueError("every source needs one position at least; got an empty source")
        pad = padding_mask(src_len, src.shape[1])
        h = F.dropout(self.embed(self.prenet(src), 0), self.dropout, self.training)
        for layer in self.layers:
            h = layer(h, pad)
        return h, pad


@dataclass
class CoMMAOutput:
    """``prediction``: logits ``(B, N, V)`` or frames ``(B, N, F)``; ``masses``: per layer ``(B, H, N)``;
    ``alphas``: per layer ``(B, H, N, M + N)`` (with ``need_weights``); ``length_logits (B, max_len)``."""

    prediction: torch.Tensor
    masses: list[torch.Tensor]
    alphas: list[torch.Tensor]
    length_logits: torch.Tensor


class CoMMA(nn.Module):
    """The analysis model: ``forward(batch, masked, need_weights) -> CoMMAOutput``.

    Decoder input: ``Emb(ỹ) + PE + TypeEmb(tgt)``, ``ỹ`` the target with masked positions replaced by ``[MASK]``
    (tokens) or a learnt mask vector (frames). Every decoder layer is a :class:`MixDecoderLayer`.
    """

    def __init__(self, s: Sizes, mask_id: int = 0) -> None:
        super().__init__()
        self.sizes, self.mask_id = s, mask_id
        self.encoder = SourceEncoder(s)
        self.tokens = s.tgt_vocab > 0
        self.tgt_prenet: nn.Module = (
            nn.Embedding(s.tgt_vocab, s.d_model) if self.tokens else nn.Linear(s.tgt_dim, s.d_model)
        )
        self.mask_vector = nn.Parameter(torch.zeros(s.d_model))
        self.layers = nn.ModuleList(
            MixDecoderLayer(s.d_model, s.num_heads, s.d_ff, s.dropout) for _ in range(s.decoder_layers)
        )
        self.out = nn.Linear(s.d_model, s.tgt_vocab if self.tokens else s.tgt_dim)
        self.length_head = nn.Linear(s.d_model, s.max_len)

    def forward(self, batch: Batch, masked: torch.Tensor, need_weights: bool = False) -> CoMMAOutput:
        memory, src_pad = self.encoder(batch.src, batch.src_len)
        tgt_pad = padding_mask(batch.tgt_len, batch.tgt.shape[1])
        if masked.shape != tgt_pad.shape:
            raise ValueError(f"masked must be (B, N) = {tuple(tgt_pad.shape)}, got {tuple(masked.shape)}")
        if self.tokens:
            y = self.tgt_prenet(batch.tgt.masked_fill(masked, self.mask_id))
        else:
            y = torch.where(masked[..., None], self.mask_vector, self.tgt_prenet(batch.tgt))
        x = F.dropout(self.encoder.embed(y, 1), self.sizes.dropout, self.training)
        masses, alphas = [], []
        for layer in self.layers:
            x, mass, alpha = layer(x, memory, src_pad, tgt_pad, need_weights)
            masses.append(mass)
            if alpha is not None:
                alphas.append(alpha)
        keep = (~src_pad)[..., None].float()
        pooled = (memory * keep).sum(1) / keep.sum(1)
        return CoMMAOutput(self.out(x), masses, alphas, self.length_head(pooled))


def density_ratio(
    masses: list[torch.Tensor],
    masked: torch.Tensor,
    src_len: torch.Tensor,
    tgt_len: torch.Tensor,
    length_normalised: bool = True,
) -> torch.Tensor:
    """Per-sentence attention density ratio ``(B,)``.

    For a masked position ``i``, ``R_i = (mass_i / N) / (1 / (N + M)) = mass_i (N + M) / N``: the attention per
    target key over the attention per key of any kind, with ``N`` and ``M`` the real (unpadded) lengths, so
    ``R = 1`` for uniform attention whatever the lengths. ``mass_i`` is averaged over the heads of all decoder
    layers; ``R_i`` is averaged over the masked positions of the sentence (never the unmasked ones). With
    ``length_normalised=False`` the factor ``(N + M) / N`` is left out: the result is the target's share of the
    attention, ``mass_i`` itself, averaged the same way.
    """
    mass = torch.stack(masses).mean(dim=(0, 2))  # (B, N): mean over layers and heads
    n, m = tgt_len.float()[:, None], src_len.float()[:, None]
    r = mass * (n + m) / n if length_normalised else mass
    return (r * masked).sum(1) / masked.sum(1).clamp_min(1)


def alignment_loss(
    alphas: list[torch.Tensor], align: torch.Tensor, tgt_len: torch.Tensor, src_len: torch.Tensor
) -> torch.Tensor:
    """``KL(A* || alpha_src)`` averaged over real target positions and layers: ``A* (B, N, M)`` the known
    alignment (rows sum to one), ``alpha_src`` the head-averaged source part of the mix-attention renormalised to
    sum to one. Renormalising shapes *where* on the source a position looks, and leaves the source/target split
    free, so a lower R under this loss is an effect, not the loss itself."""
    m = align.shape[2]
    real = ~padding_mask(tgt_len, align.shape[1])
    total = align.new_zeros(())
    for alpha in alphas:
        src = alpha[..., :m].mean(1)  # (B, N, M)
        src = src / src.sum(-1, keepdim=True).clamp_min(1e-9)
        kl = (align * (align.clamp_min(1e-9).log() - src.clamp_min(1e-9).log())).sum(-1)
        total = total + (kl * real).sum() / real.sum()
    return total / max(1, len(alphas))


def comma_loss(
    model: CoMMA, batch: Batch, masked: torch.Tensor, align_weight: float = 0.0, length_weight: float = 0.1
) -> dict[str, torch.Tensor]:
    """``{"loss", "pred", "length", "align"}``: the masked-position loss (cross-entropy, or L1 for frames), the
    target-length cross-entropy (token tasks) and the weighted alignment loss."""
    out = model(batch, masked, need_weights=align_weight > 0)
    if model.tokens:
        pred = F.cross_entropy(out.prediction[masked], batch.tgt[masked])
        length = F.cross_entropy(out.length_logits, batch.tgt_len.clamp_max(model.sizes.max_len - 1))
    else:
        pred = (out.prediction[masked] - batch.tgt[masked]).abs().mean()
        length = pred.new_zeros(())
    align = (
        alignment_loss(out.alphas, batch.align, batch.tgt_len, batch.src_len)
        if align_weight > 0
        else pred.new_zeros(())
    )
    return {
        "loss": pred + length_weight * length + align_weight * align,
        "pred": pred,
        "length": length,
        "align": align,
    }


def check_sizes(s: Sizes) -> None:
    check_int("d_model", s.d_model, 1)
    if s.d_model % s.num_heads:
        raise ValueError(f"d_model={s.d_model} must be divisible by num_heads={s.num_heads}")
