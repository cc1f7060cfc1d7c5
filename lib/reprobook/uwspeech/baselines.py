"""What UWSpeech is compared with.

* The **VQ-VAE pipeline**: the same converter, inverter and translator with units trained without the cross-lingual
  recognition term (``UWSpeechConfig(system="vqvae")``, i.e. ``lam = 0``); no extra code.
* **Direct translation** (:class:`DirectTranslator`): source speech straight to target mel with the translator's
  encoder and decoder sizes, an autoregressive mel decoder in the style of Translatotron/Transformer TTS. It predicts
  ``4`` mel frames per decoder step (the "reduction factor"), so it runs at the units' rate, and a stop probability.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reprobook.nn.transformer import DecoderLayer, MultiHeadAttention, padding_mask, sinusoidal_positions
from reprobook.uwspeech.model import DOWNSAMPLE, N_MELS, SpeechEncoder, downsampled_lengths


def group_frames(mel: torch.Tensor) -> torch.Tensor:
    """``(B, T, 80)`` with ``T`` a multiple of 4 -> ``(B, T/4, 320)``: four frames per decoder step."""
    return mel.reshape(mel.shape[0], mel.shape[1] // DOWNSAMPLE, DOWNSAMPLE * N_MELS)


class DirectTranslator(nn.Module):
    """Source mel -> target mel, autoregressive over groups of 4 frames; L1 on mel plus a stop-token BCE."""

    def __init__(self, d_model: int, num_heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.encoder = SpeechEncoder(d_model, num_heads, layers, dropout)
        self.prenet = nn.Sequential(nn.Linear(DOWNSAMPLE * N_MELS, d_model), nn.ReLU(), nn.Linear(d_model, d_model))
        attention = lambda: MultiHeadAttention(d_model, num_heads, dropout)  # noqa: E731
        self.decoder = nn.ModuleList(DecoderLayer(d_model, 4 * d_model, attention, dropout) for _ in range(layers))
        self.mel_out = nn.Linear(d_model, DOWNSAMPLE * N_MELS)
        self.stop_out = nn.Linear(d_model, 1)
        self.d_model, self.label = d_model, "direct translation"

    def decode(
        self, previous: torch.Tensor, memory: torch.Tensor, src_padding: torch.Tensor, tgt_padding: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The prenet's dropout stays on at inference, as in Tacotron 2: it keeps the decoder from copying its input.
        y = F.dropout(self.prenet(previous), 0.5, training=True)
        y = y + sinusoidal_positions(y.shape[1], self.d_model).to(y)
        for layer in self.decoder:
            y = layer(y, memory, tgt_padding, src_padding)
        return self.mel_out(y), self.stop_out(y).squeeze(-1)

    def loss(
        self, mel: torch.Tensor, lengths: torch.Tensor, target: torch.Tensor, target_lengths: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced L1 on the target mel ``(B, T, 80)`` (``T`` a multiple of 4) and BCE on the stop flag."""
        memory, src_padding = self.encoder(mel, lengths)
        groups = group_frames(target)
        previous = torch.cat([torch.zeros_like(groups[:, :1]), groups[:, :-1]], 1)
        steps = downsampled_lengths(target_lengths)
        tgt_padding = padding_mask(steps, groups.shape[1])
        predicted, stop_logit = self.decode(previous, memory, src_padding, tgt_padding)
        valid = ~tgt_padding
        l1 = (predicted - groups).abs().mean(-1)[valid].mean()
        stop = (torch.arange(groups.shape[1])[None, :] >= steps[:, None] - 1).float()
        bce = F.binary_cross_entropy_with_logits(stop_logit[valid], stop[valid])
        return {"loss": l1 + bce, "l1": l1, "stop": bce}

    @torch.no_grad()
    def translate(self, mel: torch.Tensor, lengths: torch.Tensor, max_ratio: float = 1.5) -> list[torch.Tensor]:
        """Greedy autoregressive generation until the stop probability passes 1/2: one ``(T_i, 80)`` mel each."""
        memory, src_padding = self.encoder(mel, lengths)
        max_steps = int(downsampled_lengths(lengths).max() * max_ratio) + 4
        previous = torch.zeros(len(mel), 1, DOWNSAMPLE * N_MELS)
        ends = torch.full((len(mel),), max_steps)
        outputs = []
        for step in range(max_steps):
            predicted, stop_logit = self.decode(previous, memory, src_padding, None)
            outputs.append(predicted[:, -1])
            previous = torch.cat([previous, predicted[:, -1:]], 1)
            stopped = (stop_logit[:, -1] > 0) & (ends == max_steps)
            ends[stopped] = step + 1
            if bool((ends < max_steps).all()):
                break
        frames = torch.stack(outputs, 1)
        return [frames[i, : int(ends[i])].reshape(-1, N_MELS) for i in range(len(mel))]

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> Any:
        return self.translate(mel, lengths)
