"""A small post-LN Transformer encoder-decoder (Vaswani et al., 2017), shared by the text and speech chapters.

Pieces, each usable alone:

* :class:`MultiHeadAttention` -- ``Attn_M(Q, K, V) = Concat_j(head_j) W^O`` with
  ``head_j = softmax(Q W_j^Q (K W_j^K)^T / sqrt(d_k)) V W_j^V`` (Eq. 1-2 of "Attention is all you need");
* :class:`FeedForward` -- ``max(0, x W_1 + b_1) W_2 + b_2``;
* :class:`EncoderLayer`, :class:`DecoderLayer` -- post-LN residual blocks, ``LayerNorm(x + Dropout(sublayer(x)))``.
  Both take an ``attention`` factory, so a method can swap in its own attention (MAT's multi-branch attention)
  without copying the layers. An attention module is called as
  ``attn(query, key, value, key_padding_mask=None, causal=False) -> (B, T_q, d)``;
* :class:`ConvFeedForward`, :class:`FFTBlock` -- FastSpeech's feed-forward Transformer block: self-attention and a
  1-D convolutional feed-forward network, post-LN, with padded positions zeroed after each sub-layer;
  :func:`padding_mask` turns lengths into the boolean mask every block takes;
* :class:`Seq2SeqTransformer` -- embeddings (scaled by ``sqrt(d)``) + sinusoidal positions, encoder, decoder and
  an output projection tied to the target embedding;
* :func:`greedy_decode`, :func:`beam_search` -- decoding (no KV cache: the decoder re-reads its prefix, which is
  cheap at the book's sentence lengths);
* :func:`label_smoothed_loss`, :func:`inverse_sqrt_schedule` -- the usual training recipe.

Shapes: ``src: (B, S)`` and ``tgt: (B, T)`` long ids, right-padded with ``pad_id``; hidden states ``(B, T, d)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reprobook._validate import check_float, check_int, describe

AttentionFactory = Callable[[], nn.Module]


def check_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, d_model: int) -> None:
    if query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
        raise ValueError(
            f"query, key and value must be (B, T, d); got {tuple(query.shape)}, {tuple(key.shape)}, "
            f"{tuple(value.shape)}"
        )
    if key.shape[:2] != value.shape[:2]:
        raise ValueError(
            f"key and value must have the same batch and length, got key {tuple(key.shape)} "
            f"and value {tuple(value.shape)}"
        )
    if query.shape[0] != key.shape[0]:
        raise ValueError(f"query and key have different batch sizes: {query.shape[0]} and {key.shape[0]}")
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.shape[-1] != d_model:
            raise ValueError(f"{name} has {t.shape[-1]} features, expected d_model={d_model}")


def attention_mask(
    batch: int, t_q: int, t_k: int, key_padding_mask: torch.Tensor | None, causal: bool, device: torch.device
) -> torch.Tensor | None:
    """Boolean ``(B, 1, T_q, T_k)`` mask, True where attention is *forbidden*; None when nothing is masked."""
    mask = None
    if key_padding_mask is not None:
        if key_padding_mask.shape != (batch, t_k) or key_padding_mask.dtype != torch.bool:
            raise ValueError(
                f"key_padding_mask must be a bool (B, T_k) = ({batch}, {t_k}) tensor, True at padding; "
                f"got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
            )
        mask = key_padding_mask[:, None, None, :].expand(batch, 1, t_q, t_k)
    if causal:
        future = torch.ones(t_q, t_k, dtype=torch.bool, device=device).triu(1 + t_k - t_q)
        mask = future[None, None].expand(batch, 1, t_q, t_k) if mask is None else mask | future
    return mask


class MultiHeadAttention(nn.Module):
    """Standard multi-head attention with separate Q/K/V/O projections (``d_k = d_model / num_heads``).

    ``forward(query (B, T_q, d), key (B, T_k, d), value (B, T_k, d), key_padding_mask (B, T_k) bool | None,
    causal) -> (B, T_q, d)``. With ``store_weights = True`` the last attention probabilities
    ``(B, M, T_q, T_k)`` are kept in ``last_weights`` (for plots).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        check_int("d_model", d_model, 1)
        check_int("num_heads", num_heads, 1)
        check_float("dropout", dropout, 0, 1, open_high=True)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.d_model, self.num_heads, self.d_k = d_model, num_heads, d_model // num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))
        self.dropout = dropout
        self.store_weights = False
        self.keep_weight_grad = False  # with store_weights: keep last_weights in the graph (an attention loss)
        self.last_weights: torch.Tensor | None = None

    def weights(self) -> torch.Tensor:
        """The attention weights ``(B, heads, T_q, T_k)`` of the last call (set ``store_weights = True`` first)."""
        if self.last_weights is None:
            raise RuntimeError("no attention weights stored: set store_weights = True before the forward pass")
        return self.last_weights

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, d) -> (B, M, T, d_k)``."""
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.d_k).transpose(1, 2)

    def heads(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        """``Concat_j(head_j)`` before ``W^O``: ``(B, T_q, d)``."""
        check_qkv(query, key, value, self.d_model)
        q, k, v = (
            self.split_heads(self.q_proj(query)),
            self.split_heads(self.k_proj(key)),
            self.split_heads(self.v_proj(value)),
        )
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_k)
        mask = attention_mask(query.shape[0], query.shape[1], key.shape[1], key_padding_mask, causal, query.device)
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if self.store_weights:
            self.last_weights = weights if self.keep_weight_grad else weights.detach()
        weights = F.dropout(weights, self.dropout, self.training)
        return (weights @ v).transpose(1, 2).reshape(query.shape[0], query.shape[1], self.d_model)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        out: torch.Tensor = self.out_proj(self.heads(query, key, value, key_padding_mask, causal))
        return out


class FeedForward(nn.Module):
    """Position-wise ``W_2 ReLU(W_1 x)``: ``(B, T, d) -> (B, T, d)`` through ``d_ff`` hidden units."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1, self.fc2, self.dropout = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model), dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(F.dropout(F.relu(self.fc1(x)), self.dropout, self.training))
        return out


class EncoderLayer(nn.Module):
    """Post-LN: ``x = LN(x + Drop(SelfAttn(x)))``, ``x = LN(x + Drop(FFN(x)))``."""

    def __init__(self, d_model: int, d_ff: int, attention: AttentionFactory, dropout: float) -> None:
        super().__init__()
        self.self_attn, self.ffn = attention(), FeedForward(d_model, d_ff)
        self.norm1, self.norm2, self.dropout = nn.LayerNorm(d_model), nn.LayerNorm(d_model), dropout

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + F.dropout(self.self_attn(x, x, x, padding), self.dropout, self.training))
        out: torch.Tensor = self.norm2(x + F.dropout(self.ffn(x), self.dropout, self.training))
        return out


class DecoderLayer(nn.Module):
    """Post-LN: causal self-attention, encoder-decoder attention, FFN, each ``LN(x + Drop(sublayer))``."""

    def __init__(self, d_model: int, d_ff: int, attention: AttentionFactory, dropout: float) -> None:
        super().__init__()
        self.self_attn, self.cross_attn, self.ffn = attention(), attention(), FeedForward(d_model, d_ff)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = dropout

    def forward(
        self,
        y: torch.Tensor,
        memory: torch.Tensor,
        tgt_padding: torch.Tensor | None,
        src_padding: torch.Tensor | None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``context`` (incremental decoding): the layer's inputs so far ``(B, t, d)``, ``y`` included as the last
        row; ``y`` then attends to all of it (no causal mask needed) and ``tgt_padding`` is ignored."""
        drop = lambda h: F.dropout(h, self.dropout, self.training)  # noqa: E731
        if context is None:
            attended = self.self_attn(y, y, y, tgt_padding, causal=True)
        else:
            attended = self.self_attn(y, context, context)
        y = self.norms[0](y + drop(attended))
        y = self.norms[1](y + drop(self.cross_attn(y, memory, memory, src_padding)))
        out: torch.Tensor = self.norms[2](y + drop(self.ffn(y)))
        return out


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``lengths (B,)`` -> bool ``(B, max_len)``, True at padding (positions ``>= lengths[b]``)."""
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {tuple(lengths.shape)}")
    width = int(lengths.max()) if max_len is None and lengths.numel() else (max_len or 0)
    return torch.arange(width, device=lengths.device)[None, :] >= lengths[:, None]


class ConvFeedForward(nn.Module):
    """FastSpeech's FFN: ``Conv1d_k2(ReLU(Conv1d_k1(x)))`` over time, ``(B, T, d) -> (B, T, d)``.

    ``kernel_sizes = (9, 1)`` in FastSpeech 2; ``(1, 1)`` is the position-wise :class:`FeedForward`.
    """

    def __init__(self, d_model: int, d_ff: int, kernel_sizes: tuple[int, int] = (9, 1), dropout: float = 0.0) -> None:
        super().__init__()
        k1, k2 = kernel_sizes
        if k1 % 2 == 0 or k2 % 2 == 0:
            raise ValueError(f"kernel_sizes must be odd (same-length convolutions), got {kernel_sizes}")
        self.conv1 = nn.Conv1d(d_model, d_ff, k1, padding=k1 // 2)
        self.conv2 = nn.Conv1d(d_ff, d_model, k2, padding=k2 // 2)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.dropout(F.relu(self.conv1(x.transpose(1, 2))), self.dropout, self.training)
        out: torch.Tensor = self.conv2(h).transpose(1, 2)
        return out


class FFTBlock(nn.Module):
    """Feed-forward Transformer block (FastSpeech, Sec. 3.1): ``(B, T, d) -> (B, T, d)``.

    ``y = LN(x + Drop(SelfAttn(x)))``, ``out = LN(y + Drop(ConvFFN(y)))`` (post-LN), with the positions where
    ``padding (B, T)`` is True set to zero after each sub-layer, so padding never leaks through the
    convolutions. ``attention`` builds the self-attention (default :class:`MultiHeadAttention`).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        kernel_sizes: tuple[int, int] = (9, 1),
        dropout: float = 0.1,
        attention: AttentionFactory | None = None,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.self_attn = (
            attention() if attention is not None else MultiHeadAttention(d_model, num_heads, attention_dropout)
        )
        self.ffn = ConvFeedForward(d_model, d_ff, kernel_sizes, dropout)
        self.norm1, self.norm2, self.dropout = nn.LayerNorm(d_model), nn.LayerNorm(d_model), dropout

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        keep = 1.0 if padding is None else (~padding)[..., None].to(x.dtype)
        x = self.norm1(x + F.dropout(self.self_attn(x, x, x, padding), self.dropout, self.training)) * keep
        out: torch.Tensor = self.norm2(x + F.dropout(self.ffn(x), self.dropout, self.training)) * keep
        return out


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """``PE[t, 2i] = sin(t / 10000^(2i/d))``, ``PE[t, 2i+1] = cos(...)``: ``(length, d)``."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10_000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return pe


@dataclass
class TransformerSizes:
    """Sizes of a :class:`Seq2SeqTransformer`. ``decoder_ff`` defaults to ``encoder_ff``."""

    src_vocab: int
    tgt_vocab: int
    d_model: int = 64
    num_heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    encoder_ff: int = 256
    decoder_ff: int | None = None
    dropout: float = 0.3
    attention_dropout: float = 0.0
    max_len: int = 256
    pad_id: int = 0


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer; ``forward(src (B, S), tgt_in (B, T)) -> logits (B, T, V_tgt)``.

    ``attention`` builds every attention module (encoder self, decoder self and encoder-decoder); the default
    is :class:`MultiHeadAttention`. The output projection shares its weight with the target embedding.
    """

    positions: torch.Tensor

    def __init__(self, sizes: TransformerSizes, attention: AttentionFactory | None = None) -> None:
        super().__init__()
        s = sizes
        self.sizes = s
        make = attention or (lambda: MultiHeadAttention(s.d_model, s.num_heads, s.attention_dropout))
        self.src_embed, self.tgt_embed = nn.Embedding(s.src_vocab, s.d_model), nn.Embedding(s.tgt_vocab, s.d_model)
        for emb in (self.src_embed, self.tgt_embed):
            nn.init.normal_(emb.weight, std=s.d_model**-0.5)
        self.register_buffer("positions", sinusoidal_positions(s.max_len, s.d_model), persistent=False)
        self.encoder = nn.ModuleList(
            EncoderLayer(s.d_model, s.encoder_ff, make, s.dropout) for _ in range(s.encoder_layers)
        )
        d_ff = s.encoder_ff if s.decoder_ff is None else s.decoder_ff
        self.decoder = nn.ModuleList(DecoderLayer(s.d_model, d_ff, make, s.dropout) for _ in range(s.decoder_layers))

    def _embed(self, emb: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2:
            raise ValueError(f"token ids must be a long tensor (B, T), got {describe(ids)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= emb.num_embeddings):
            bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
            raise ValueError(f"token id {bad} is outside the vocabulary (ids 0..{emb.num_embeddings - 1})")
        if ids.shape[1] > self.sizes.max_len:
            raise ValueError(f"sequence of length {ids.shape[1]} is longer than max_len={self.sizes.max_len}")
        x = emb(ids) * math.sqrt(self.sizes.d_model) + self.positions[: ids.shape[1]]
        return F.dropout(x, self.sizes.dropout, self.training)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src (B, S) -> (memory (B, S, d), src_padding (B, S) bool)``."""
        padding = src == self.sizes.pad_id
        x = self._embed(self.src_embed, src)
        for layer in self.encoder:
            x = layer(x, padding)
        return x, padding

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_padding: torch.Tensor) -> torch.Tensor:
        """``tgt_in (B, T)`` (starting with ``<bos>``) -> logits ``(B, T, V_tgt)``."""
        padding = tgt_in == self.sizes.pad_id
        y = self._embed(self.tgt_embed, tgt_in)
        for layer in self.decoder:
            y = layer(y, memory, padding, src_padding)
        return y @ self.tgt_embed.weight.t()

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, padding = self.encode(src)
        return self.decode(tgt_in, memory, padding)


def label_smoothed_loss(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.1, pad_id: int = 0
) -> torch.Tensor:
    """Mean cross-entropy over non-pad tokens with label smoothing ``epsilon`` (Szegedy et al., 2016).

    ``logits (B, T, V)``, ``target (B, T)``.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing={smoothing!r} is out of range; expected 0 <= smoothing < 1")
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=pad_id, label_smoothing=smoothing)


def inverse_sqrt_schedule(optimizer: torch.optim.Optimizer, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """``lr_t = lr * min(t / warmup, sqrt(warmup / t))``: linear warm-up, then ``1/sqrt(t)`` decay (fairseq's
    ``inverse_sqrt``). Call ``scheduler.step()`` after each ``optimizer.step()``."""
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1, got {warmup}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, math.sqrt(warmup / (step + 1)))
    )


@torch.no_grad()
def greedy_decode(
    model: Seq2SeqTransformer, src: torch.Tensor, bos_id: int, eos_id: int, max_len: int = 64
) -> torch.Tensor:
    """Most likely next token at each step: ``src (B, S) -> (B, <= max_len)`` ids without ``<bos>``, padded
    with ``pad_id`` after ``<eos>``."""
    memory, padding = model.encode(src)
    pad = model.sizes.pad_id
    out = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        nxt = model.decode(out, memory, padding)[:, -1].argmax(-1)
        nxt = nxt.masked_fill(done, pad)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= nxt == eos_id
        if done.all():
            break
    return out[:, 1:]


@torch.no_grad()
def beam_search(
    model: Seq2SeqTransformer,
    src: torch.Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int = 5,
    max_len: int = 64,
    length_penalty: float = 1.0,
) -> torch.Tensor:
    """Beam search with fairseq's stopping rule: a sentence is finished once ``beam_size`` hypotheses have
    emitted ``<eos>``; the best of them by ``sum log p / length ** length_penalty`` (length counting ``<eos>``)
    wins. ``src (B, S) -> (B, <= max_len)`` like :func:`greedy_decode`; with ``beam_size=1`` it returns
    exactly what greedy decoding returns."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    b, k, pad = src.shape[0], beam_size, model.sizes.pad_id
    memory, padding = model.encode(src)
    memory, padding = memory.repeat_interleave(k, 0), padding.repeat_interleave(k, 0)
    seqs = torch.full((b * k, 1), bos_id, dtype=torch.long, device=src.device)
    scores = torch.full((b, k), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # all beams start identical: keep one
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    for step in range(1, max_len + 1):
        logp = model.decode(seqs, memory, padding)[:, -1].log_softmax(-1)  # (B*k, V)
        vocab = logp.shape[-1]
        top, idx = (scores.view(-1, 1) + logp).view(b, k * vocab).topk(min(2 * k, k * vocab), dim=-1)
        rows: list[torch.Tensor] = []
        new_scores = torch.full((b, k), float("-inf"), device=src.device)
        for i in range(b):
            row: list[torch.Tensor] = []
            for s, j in zip(top[i].tolist(), idx[i].tolist()):
                if len(finished[i]) >= k or len(row) == k or s == float("-inf"):
                    break
                beam, token = divmod(j, vocab)
                prefix = seqs[i * k + beam]
                if token == eos_id or step == max_len:  # at max_len every live hypothesis is finished
                    finished[i].append((s / step**length_penalty, [*prefix[1:].tolist(), token]))
                else:
                    new_scores[i, len(row)] = s
                    row.append(torch.cat([prefix, prefix.new_tensor([token])]))
            row += [torch.cat([seqs[i * k], seqs.new_tensor([pad])])] * (k - len(row))
            rows.extend(row)
        if all(len(f) >= k or step == max_len for f in finished):
            break
        seqs, scores = torch.stack(rows), new_scores
    best = [max(f, key=lambda h: h[0])[1] for f in finished]
    out = torch.full((b, max(len(h) for h in best)), pad, dtype=torch.long, device=src.device)
    for i, h in enumerate(best):
        out[i, : len(h)] = torch.tensor(h, dtype=torch.long)
    return out
