"""The baseline FastSpeech 2 improves on: FastSpeech (Ren et al., 2019) and its autoregressive teacher.

FastSpeech needs a teacher for two things (Sec. 1 and 3.1 of the FastSpeech 2 paper):

1. **durations**: the teacher's encoder-decoder attention is read as an alignment. Of all heads, take the one whose
   attention is most *focused* (focus rate ``F = (1/T) sum_t max_n a_{t,n}``, FastSpeech Sec. 3.3) and give
   phoneme ``n`` the number of frames whose attention peaks on it: ``d_n = #{t : argmax_n' a_{t,n'} = n}``, so
   ``sum_n d_n = T`` exactly;
2. **distilled targets**: the teacher's own generated mels (sequence-level knowledge distillation), which are
   smoother and more deterministic than the recordings; the student learns an easier, averaged mapping.

The teacher here is a small Transformer TTS (Li et al., 2019): phoneme encoder, a pre-net on the previous mel
frames, causal decoder layers with encoder-decoder attention (the shared :mod:`reprobook.nn.transformer` layers),
and a linear mel head, trained with teacher forcing on ground-truth mels. Three standard devices let a small teacher
learn to speak in minutes: ``r`` frames per decoder step (Tacotron's reduction factor), the pre-net's dropout kept on
at inference (Tacotron 2), and a guided-attention loss (DC-TTS; penalty ``W_{n,s} = 1 - exp(-(n/N - s/S)^2 / 2g^2)``
on attention off the diagonal). It stops at the ground-truth frame count instead of predicting a stop token (a
simplification in its favour).

:func:`distill` is the step between teacher and student: one autoregressive pass over the training set gives both
the durations and the distilled mels. ``train(FastSpeech2Config(model="fastspeech", pitch="none", energy=False))``
runs the whole pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import torch
import torch.nn.functional as F
from torch import nn

from reprobook._validate import check_float, check_int
from reprobook.data.speech import N_MELS
from reprobook.fastspeech2.data import Batch, TTSItem, collate
from reprobook.nn.transformer import DecoderLayer, EncoderLayer, MultiHeadAttention, padding_mask, sinusoidal_positions
from reprobook.nn.utils import eval_mode
from reprobook.profiles import pick_default


@dataclass
class TeacherConfig:
    """The autoregressive Transformer TTS teacher: its sizes (as the FastSpeech 2 it is compared with), its
    ``reduction`` factor (mel frames per decoder step) and its training recipe (FastSpeech 2's batch, learning rate,
    warm-up and clipping; its own ``num_steps``, what the teacher needs to speak at the profile's scale, measured in
    the chapter). Seed and validation schedule are the run's (:class:`~reprobook.fastspeech2.FastSpeech2Config`).

    ``book`` departs from the usual recipe where a measurement said so (2,000 steps, 12 test sentences): pre-net
    dropout 0.2 instead of Tacotron 2's 0.5 (teacher-forced mel L1 0.76 against 1.21, free-running MCD 3.05 against
    3.11 dB), and a guided-attention width of 0.1 instead of DC-TTS's 0.2 (durations from attention off by 2.7
    against 3.8 frames per phoneme)."""

    d_model: int = pick_default(smoke=32, book=64, full=256)
    num_heads: int = 2
    encoder_layers: int = pick_default(smoke=1, book=2, full=4)
    decoder_layers: int = pick_default(smoke=1, book=2, full=4)
    d_ff: int = pick_default(smoke=64, book=192, full=1024)
    dropout: float = 0.1
    prenet_dropout: float = pick_default(smoke=0.2, book=0.2, full=0.5)
    reduction: int = pick_default(smoke=2, book=2, full=1)
    guided_sigma: float = pick_default(smoke=0.1, book=0.1, full=0.2)
    guided_weight: float = 10.0
    max_len: int = 2048
    num_steps: int = pick_default(smoke=12, book=2_000, full=20_000)
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = pick_default(smoke=4, book=100, full=4_000)
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        for name in ("d_model", "num_heads", "encoder_layers", "decoder_layers", "d_ff", "max_len", "reduction"):
            check_int(f"teacher.{name}", getattr(self, name), 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"teacher.d_model={self.d_model} must be divisible by teacher.num_heads={self.num_heads}")
        check_float("teacher.dropout", self.dropout, 0, 1)
        check_float("teacher.prenet_dropout", self.prenet_dropout, 0, 1)
        check_float("teacher.guided_sigma", self.guided_sigma, 0, open_low=True)
        check_float("teacher.guided_weight", self.guided_weight, 0)
        for name in ("num_steps", "batch_size", "warmup"):
            check_int(f"teacher.{name}", getattr(self, name), 1)
        check_float("teacher.lr", self.lr, 0, open_low=True)
        check_float("teacher.grad_clip", self.grad_clip, 0, open_low=True)


class TransformerTTS(nn.Module):
    """``forward(batch) -> (mel (B, T, 80), [cross-attention (B, M, S, N) per decoder layer])`` with teacher forcing;
    phoneme ids ``0 .. vocab_size - 1`` (0 = padding).

    Each decoder step writes ``r = config.reduction`` frames (Tacotron's reduction factor), so an utterance of
    ``T`` frames takes ``S = ceil(T / r)`` steps, and the pre-net reads the previous step's ``r`` frames. With
    ``r > 1`` the decoder cannot simply copy its last input frame, and each step is cheaper: a small teacher aligns
    and speaks in far fewer steps (measured in the chapter)."""

    positions: torch.Tensor

    def __init__(self, config: TeacherConfig, vocab_size: int) -> None:
        super().__init__()
        check_int("vocab_size", vocab_size, 2)
        c = self.config = config
        d = c.d_model
        make = lambda: MultiHeadAttention(d, c.num_heads)  # noqa: E731
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.register_buffer("positions", sinusoidal_positions(c.max_len, d), persistent=False)
        self.encoder = nn.ModuleList(EncoderLayer(d, c.d_ff, make, c.dropout) for _ in range(c.encoder_layers))
        self.prenet = nn.Sequential(nn.Linear(N_MELS * c.reduction, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU())
        self.decoder = nn.ModuleList(DecoderLayer(d, c.d_ff, make, c.dropout) for _ in range(c.decoder_layers))
        self.mel_out = nn.Linear(d, N_MELS * c.reduction)
        for layer in self.decoder:
            _cross_attention(layer).store_weights = True

    def encode(self, phonemes: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padding = padding_mask(src_lengths, phonemes.shape[1])
        x = F.dropout(self.embed(phonemes) + self.positions[: phonemes.shape[1]], self.config.dropout, self.training)
        for layer in self.encoder:
            x = layer(x, padding)
        return x, padding

    def _prenet(self, previous: torch.Tensor) -> torch.Tensor:
        # The pre-net's dropout stays on at inference, as in Tacotron 2: it keeps the decoder from copying its input.
        out: torch.Tensor = F.dropout(self.prenet(previous), self.config.prenet_dropout, True)
        return out

    @overload
    def steps(self, num_frames: int) -> int: ...
    @overload
    def steps(self, num_frames: torch.Tensor) -> torch.Tensor: ...
    def steps(self, num_frames: int | torch.Tensor) -> int | torch.Tensor:
        """Decoder steps for ``num_frames`` frames (a count or a tensor of them): ``ceil(T / r)``."""
        return -(-num_frames // self.config.reduction)

    def step_positions(self, steps: torch.Tensor, src_lengths: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        """Positional encodings of decoder ``steps (S',)`` for each utterance, ``(B, S', d)``: step ``s`` of an
        utterance of ``S`` steps and ``N`` phonemes gets the encoding of phoneme position ``round(s N / S)``
        (Deep Voice 3's *position rate*), so a query and the key of the phoneme it should attend to share their
        position, and the diagonal is the easy alignment to learn."""
        rate = src_lengths.to(torch.float32) / self.steps(num_frames).to(torch.float32)
        index = (steps[None, :].to(torch.float32) * rate[:, None]).round().long()
        return self.positions[index.clamp(max=self.positions.shape[0] - 1)]

    def forward(self, batch: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        memory, src_padding = self.encode(batch.phonemes, batch.src_lengths)
        r, (b, t, _) = self.config.reduction, batch.mel.shape
        num_steps = self.steps(t)
        groups = F.pad(batch.mel, (0, 0, 0, num_steps * r - t)).reshape(b, num_steps, r * N_MELS)
        previous = F.pad(groups[:, :-1], (0, 0, 1, 0))  # step s is predicted from steps < s
        tgt_padding = padding_mask(self.steps(batch.mel_lengths), num_steps)
        y = self._prenet(previous) + self.step_positions(
            torch.arange(num_steps, device=groups.device), batch.src_lengths, batch.mel_lengths
        )
        for layer in self.decoder:
            _cross_attention(layer).keep_weight_grad = self.training
            y = layer(y, memory, tgt_padding, src_padding)
        mel = self.mel_out(y).reshape(b, num_steps * r, N_MELS)[:, :t]
        return mel, [_cross_attention(layer).weights() for layer in self.decoder]

    def loss(self, out: tuple[torch.Tensor, list[torch.Tensor]], batch: Batch) -> dict[str, torch.Tensor]:
        """Mel MAE with teacher forcing + ``guided_weight`` x the guided-attention penalty on every head."""
        mel, attentions = out
        frames = (~padding_mask(batch.mel_lengths, batch.mel.shape[1])).to(mel.dtype)
        l1 = ((mel - batch.mel).abs().mean(-1) * frames).sum() / frames.sum()
        step_lengths = self.steps(batch.mel_lengths)
        penalty = guided_attention_weights(batch.src_lengths, step_lengths, self.config.guided_sigma)
        steps = step_lengths.sum().to(mel.dtype)
        guided = torch.stack([(a * penalty[:, None]).sum() / (steps * a.shape[1]) for a in attentions]).mean()
        return {"loss": l1 + self.config.guided_weight * guided, "mel": l1, "guided": guided}

    @torch.no_grad()
    def generate(
        self, phonemes: torch.Tensor, src_lengths: torch.Tensor, num_frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Autoregressive synthesis, ``r`` frames a step: ``mel (B, T, 80)`` and the cross-attention of every
        head ``(B, L * M, T, N)``, each step's attention repeated over its ``r`` frames. Generation stops at
        ``num_frames (B,)`` (frames beyond are padding). The pre-net's dropout stays on (:meth:`_prenet`), so two
        calls differ unless the caller seeds torch.

        A causal layer's output at position ``s`` depends on its inputs at positions ``<= s`` only, so each step
        runs the new step through every layer against the cached inputs of the earlier ones (a KV cache that
        stores the layer inputs, not K and V). Runs in eval mode and gives the model back in the mode it was in."""
        r = self.config.reduction
        with eval_mode(self):
            memory, src_padding = self.encode(phonemes, src_lengths)
            b, total = phonemes.shape[0], int(num_frames.max())
            frame = torch.zeros(b, 1, N_MELS * r, device=phonemes.device)
            caches: list[torch.Tensor | None] = [None] * len(self.decoder)
            mels, attentions = [], []
            for t in range(self.steps(total)):
                x = self._prenet(frame) + self.step_positions(torch.tensor([t]), src_lengths, num_frames)
                step_attention = []
                for i, layer in enumerate(self.decoder):
                    cached = caches[i]
                    context = caches[i] = x if cached is None else torch.cat([cached, x], 1)
                    x = layer(x, memory, None, src_padding, context=context)
                    step_attention.append(_cross_attention(layer).weights())
                frame = self.mel_out(x)
                mels.append(frame.reshape(b, r, N_MELS))
                attentions.append(torch.cat(step_attention, 1).repeat_interleave(r, 2))  # (B, L * M, r, N)
        keep = (~padding_mask(num_frames, total))[..., None]
        return torch.cat(mels, 1)[:, :total] * keep, torch.cat(attentions, 2)[:, :, :total] * keep[:, None]


def _cross_attention(layer: nn.Module) -> MultiHeadAttention:
    attention = layer.cross_attn
    assert isinstance(attention, MultiHeadAttention)
    return attention


def guided_attention_weights(src_lengths: torch.Tensor, mel_lengths: torch.Tensor, sigma: float) -> torch.Tensor:
    """DC-TTS penalty ``W (B, T, N)``: ``1 - exp(-(n/N - t/T)^2 / (2 sigma^2))`` inside each utterance, 0 outside
    (``mel_lengths``: decoder steps, which are frames when the reduction factor is 1)."""
    n_max, t_max = int(src_lengths.max()), int(mel_lengths.max())
    n = torch.arange(n_max, device=src_lengths.device)[None, None, :] / src_lengths[:, None, None]
    t = torch.arange(t_max, device=src_lengths.device)[None, :, None] / mel_lengths[:, None, None]
    w = 1.0 - torch.exp(-((n - t) ** 2) / (2 * sigma**2))
    inside = (n < 1) & (t < 1)
    return w * inside


def focus_rate(attention: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
    """``F = (1/T) sum_t max_n a_{t,n}`` per utterance and head: ``(B, H, T, N) -> (B, H)``."""
    keep = (~padding_mask(num_frames, attention.shape[2])).to(attention.dtype)
    return (attention.max(-1).values * keep[:, None]).sum(-1) / num_frames[:, None].to(attention.dtype)


def extract_durations(
    attention: torch.Tensor, src_lengths: torch.Tensor, num_frames: torch.Tensor, head: int | None = None
) -> tuple[list[torch.Tensor], int]:
    """Phoneme durations from encoder-decoder attention ``(B, H, T, N)`` and the head used.

    ``head=None`` picks the head with the highest mean focus rate over the batch. Each utterance's durations
    count, per phoneme, the frames whose attention peaks on it; they sum to ``num_frames[b]``."""
    if head is None:
        head = int(focus_rate(attention, num_frames).mean(0).argmax())
    durations = []
    for b in range(attention.shape[0]):
        n, t = int(src_lengths[b]), int(num_frames[b])
        peaks = attention[b, head, :t, :n].argmax(-1)
        durations.append(torch.bincount(peaks, minlength=n).long())
    return durations, head


@dataclass
class Distilled:
    """The teacher's outputs on the training set: generated mels ``(T, 80)``, durations from its attention, the
    head they were read from, and the seconds it took (extraction and generation are one autoregressive pass)."""

    mels: list[torch.Tensor]
    durations: list[torch.Tensor]
    head: int
    seconds: float


def distill(teacher: TransformerTTS, items: Sequence[TTSItem], batch_size: int = 50) -> Distilled:
    """Sequence-level distillation and duration extraction in one autoregressive pass over ``items``: the head
    with the highest mean focus rate over all of them gives every utterance's durations."""
    start = time.perf_counter()
    mels, attentions, shapes = [], [], []
    for first in range(0, len(items), batch_size):
        batch = collate(items[first : first + batch_size])
        mel, attention = teacher.generate(batch.phonemes, batch.src_lengths, batch.mel_lengths)
        for b in range(mel.shape[0]):
            n, t = int(batch.src_lengths[b]), int(batch.mel_lengths[b])
            mels.append(mel[b, :t].clone())
            attentions.append(attention[b, :, :t, :n])
            shapes.append((n, t))
    focus = torch.stack([focus_rate(a[None], torch.tensor([t]))[0] for a, (_, t) in zip(attentions, shapes)]).mean(0)
    head = int(focus.argmax())
    durations = []
    for a, (n, t) in zip(attentions, shapes):
        d, _ = extract_durations(a[None], torch.tensor([n]), torch.tensor([t]), head)
        durations.append(d[0])
    return Distilled(mels, durations, head, time.perf_counter() - start)
