"""What CoMMA's analysis is compared with: an autoregressive (AR) Transformer per task, which is also the
knowledge-distillation teacher, and :func:`distill`, which rewrites the training targets with its greedy output.

The plain non-autoregressive (NAR) model is :class:`~reprobook.comma.model.CoMMA` trained with every target
position masked (``CoMMAConfig(model="nar")``): it sees only the source and the positions, predicts the target
length (token tasks; TTS uses the true number of frames) and emits every position at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reprobook.comma.data import Batch, CoMMAData, chunks, with_targets
from reprobook.comma.model import Sizes, SourceEncoder
from reprobook.data.text import Vocabulary
from reprobook.nn import eval_mode, model_device
from reprobook.nn.transformer import DecoderLayer, MultiHeadAttention, padding_mask

BOS, EOS = Vocabulary.bos_id, Vocabulary.eos_id


class ARModel(nn.Module):
    """Encoder (the same :class:`SourceEncoder` as CoMMA) + causal Transformer decoder, trained with teacher
    forcing. Tokens: ``<bos> y`` in, ``y <eos>`` out. Frames: a learnt go-frame, then the previous frame."""

    def __init__(self, s: Sizes) -> None:
        super().__init__()
        self.sizes = s
        self.encoder = SourceEncoder(s)
        self.tokens = s.tgt_vocab > 0
        self.tgt_prenet: nn.Module = (
            nn.Embedding(s.tgt_vocab, s.d_model) if self.tokens else nn.Linear(s.tgt_dim, s.d_model)
        )
        self.go = nn.Parameter(torch.zeros(s.tgt_dim if not self.tokens else 1))
        make = lambda: MultiHeadAttention(s.d_model, s.num_heads)  # noqa: E731
        self.layers = nn.ModuleList(DecoderLayer(s.d_model, s.d_ff, make, s.dropout) for _ in range(s.decoder_layers))
        self.out = nn.Linear(s.d_model, s.tgt_vocab if self.tokens else s.tgt_dim)

    def decode(
        self, y_in: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor, tgt_pad: torch.Tensor | None
    ) -> torch.Tensor:
        x = F.dropout(self.encoder.embed(self.tgt_prenet(y_in), 1), self.sizes.dropout, self.training)
        for layer in self.layers:
            x = layer(x, memory, tgt_pad, src_pad)
        out: torch.Tensor = self.out(x)
        return out

    def teacher_forced(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(prediction, target, real)`` under teacher forcing; ``real (B, T)`` marks the positions scored."""
        memory, src_pad = self.encoder(batch.src, batch.src_len)
        b, dev = batch.tgt.shape[0], batch.tgt.device
        if self.tokens:
            y_in = torch.cat([torch.full((b, 1), BOS, dtype=torch.long, device=dev), batch.tgt], dim=1)
            target = torch.cat([batch.tgt, torch.zeros(b, 1, dtype=torch.long, device=dev)], dim=1)
            target[torch.arange(b, device=dev), batch.tgt_len] = EOS
            lengths = batch.tgt_len + 1
        else:
            y_in = torch.cat([self.go.expand(b, 1, -1), batch.tgt[:, :-1]], dim=1)
            target, lengths = batch.tgt, batch.tgt_len
        pad = padding_mask(lengths, y_in.shape[1])
        return self.decode(y_in, memory, src_pad, pad), target, ~pad

    @torch.no_grad()
    def generate(self, batch: Batch, max_len: int = 200) -> list[torch.Tensor]:
        """Greedy decoding, one position at a time (no cache): token ids until ``<eos>``, or ``tgt_len`` frames.
        ``batch`` is moved to the model's device; the outputs come back on the CPU."""
        batch = batch.to(model_device(self))
        memory, src_pad = self.encoder(batch.src, batch.src_len)
        b, dev = batch.src.shape[0], batch.src.device
        steps = int(batch.tgt_len.max()) if not self.tokens else min(max_len, 2 * int(batch.src_len.max()) + 10)
        y = torch.full((b, 1), BOS, dtype=torch.long, device=dev) if self.tokens else self.go.expand(b, 1, -1)
        done = torch.zeros(b, dtype=torch.bool, device=dev)
        for _ in range(steps):
            nxt = self.decode(y, memory, src_pad, None)[:, -1:]
            if self.tokens:
                nxt = nxt.argmax(-1)
                done |= nxt[:, 0] == EOS
            y = torch.cat([y, nxt], dim=1)
            if self.tokens and bool(done.all()):
                break
        if not self.tokens:
            return [y[i, 1 : 1 + int(n)].cpu() for i, n in enumerate(batch.tgt_len)]
        outs = []
        for row in y[:, 1:]:
            ids = row.tolist()
            outs.append(torch.tensor(ids[: ids.index(EOS)] if EOS in ids else ids, dtype=torch.long))
        return outs


def ar_loss(model: ARModel, batch: Batch) -> dict[str, torch.Tensor]:
    """Teacher-forced cross-entropy (tokens, ``<eos>`` included) or L1 (frames) over real positions."""
    prediction, target, real = model.teacher_forced(batch)
    if model.tokens:
        loss = F.cross_entropy(prediction[real], target[real])
    else:
        loss = (prediction[real] - target[real]).abs().mean()
    return {"loss": loss, "pred": loss}


def distill(teacher: ARModel, data: CoMMAData, batch_size: int = 128) -> CoMMAData:
    """Sequence-level knowledge distillation (Kim & Rush, 2016): ``data`` with every training target replaced by
    the AR teacher's greedy output on its source (deterministic: eval mode, argmax). An empty output keeps the
    original target."""
    if not data.tokens_out:
        raise ValueError("distill rewrites token targets; the TTS targets are frames")
    outputs: list[torch.Tensor] = []
    with eval_mode(teacher):
        for batch in chunks(data.train, batch_size):
            outputs += teacher.generate(batch)
    targets = [y if len(y) else x.tgt for y, x in zip(outputs, data.train)]
    return with_targets(data, targets)
