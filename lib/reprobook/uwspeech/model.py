"""UWSpeech's networks: the converter (encoder + vector quantiser), the inverter, XL-VAE's losses and the translator.

Equations (the VQ-VAE part is van den Oord et al. 2017; the XL-VAE coupling follows the UWSpeech abstract, its exact
form in the paper could not be read, see the chapter):

* converter: ``z_e = f_enc(mel)`` at 1/4 of the mel frame rate, ``q_t = argmin_k ||z_e,t - e_k||^2``;
* inverter: ``mel_hat = f_dec(e_q)``;
* VQ-VAE loss: ``L_VQ = |mel - mel_hat|_1 + beta ||z_e - sg[e_q]||^2`` with the straight-through gradient; the
  codebook term ``||sg[z_e] - e_q||^2`` is replaced by exponential-moving-average (EMA) codebook updates;
* XL-VAE: ``L = L_VQ(target speech) + lambda * L_CTC(written speech, phonemes)`` where the CTC logits of code ``k``
  are ``-||z_e,t - e_k||^2 / tau`` and the blank's ``-||z_e,t - b||^2 / tau`` (a learned blank vector ``b`` and a
  learned temperature ``tau``, initialised from the config). Phoneme
  ``i`` of the written languages' inventory is code ``i``: recognition pulls the encoder's frames of a phoneme
  towards one shared code.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reprobook.kernels.vector_quantize import squared_distances, vector_quantize
from reprobook.nn.transformer import DecoderLayer, EncoderLayer, MultiHeadAttention, padding_mask, sinusoidal_positions

N_MELS = 80
DOWNSAMPLE = 4
"""Converter, translator and direct baseline all run at 1/4 of the mel frame rate (about 21.5 frames a second)."""


def downsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after two stride-2 convolutions of kernel 5, padding 2: ``ceil(ceil(T / 2) / 2)``."""
    return (lengths + 3) // 4


class DownsamplingEncoder(nn.Module):
    """``(B, T, 80) -> (B, ceil(T/4), d_out)``: two stride-2 convolutions then ``layers`` kernel-3 convolutions."""

    def __init__(self, d_model: int, d_out: int, layers: int = 1) -> None:
        super().__init__()
        convs: list[nn.Module] = [nn.Conv1d(N_MELS, d_model, 5, 2, 2), nn.ReLU(), nn.Conv1d(d_model, d_model, 5, 2, 2)]
        for _ in range(layers):
            convs += [nn.ReLU(), nn.Conv1d(d_model, d_model, 3, 1, 1)]
        convs += [nn.ReLU(), nn.Conv1d(d_model, d_out, 1)]
        self.net = nn.Sequential(*convs)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(mel.transpose(1, 2)).transpose(1, 2)
        return out


class VectorQuantizer(nn.Module):
    """A codebook of ``K`` codes with EMA updates, initialisation from data and dead-code restarts.

    ``forward(z (N, D))`` returns ``codes (N,)``, ``quantized (N, D)`` (straight-through) and the per-frame
    commitment ``||z - sg[e_q]||^2 (N,)``, through the fused kernel :func:`reprobook.kernels.vector_quantize`.
    In training mode it also updates the codebook (``update``): ``N_k <- gamma N_k + (1 - gamma) n_k``,
    ``m_k <- gamma m_k + (1 - gamma) sum_{q_t = k} z_t``, ``e_k = m_k / N_k``; the first batch seeds the codes with
    random frames; a code whose EMA count falls below ``restart_below`` frames a batch is moved onto a random frame.
    """

    codebook: torch.Tensor
    ema_count: torch.Tensor
    ema_sum: torch.Tensor
    initialised: torch.Tensor

    def __init__(self, codebook_size: int, dim: int, decay: float = 0.99, restart_below: float = 0.5) -> None:
        super().__init__()
        if codebook_size < 2:
            raise ValueError(
                f"codebook_size must be at least 2 (a quantiser chooses between codes), got {codebook_size}"
            )
        self.decay, self.restart_below = decay, restart_below
        self.register_buffer("codebook", torch.randn(codebook_size, dim) * 0.1)
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialised", torch.tensor(False))
        self.restarts = 0

    @property
    def size(self) -> int:
        return int(self.codebook.shape[0])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialised):
            self.initialise(z.detach())
        codes, quantized, _, _ = vector_quantize(z, self.codebook)
        commitment = (z - quantized.detach()).pow(2).sum(-1)
        if self.training:
            self.update(z.detach(), codes)
        return codes, quantized, commitment

    @torch.no_grad()
    def initialise(self, z: torch.Tensor) -> None:
        """Seed every code with a random frame of ``z`` (repeating frames when there are fewer than codes)."""
        pick = torch.randint(len(z), (self.size,)) if len(z) < self.size else torch.randperm(len(z))[: self.size]
        self.codebook.copy_(z[pick])
        self.ema_sum.copy_(z[pick])
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def update(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        counts = torch.bincount(codes, minlength=self.size).to(z.dtype)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, z)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self.codebook.copy_(self.ema_sum / self.ema_count.clamp_min(1e-5)[:, None])
        dead = (self.ema_count < self.restart_below).nonzero().flatten()
        if len(dead):
            pick = torch.randint(len(z), (len(dead),))
            self.codebook[dead] = z[pick]
            self.ema_sum[dead] = z[pick]
            self.ema_count[dead] = 1.0
            self.restarts += len(dead)


def perplexity(codes: torch.Tensor, codebook_size: int) -> float:
    """``exp(H)`` of the code histogram: the number of equally used codes it is worth (1 = collapse)."""
    p = torch.bincount(codes.flatten(), minlength=codebook_size).float()
    p = p / p.sum().clamp_min(1)
    return float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))


class Inverter(nn.Module):
    """Codes back to mel: ``(B, T', D) -> (B, 4 T', 80)`` by two (nearest x2 upsampling, kernel-5 conv) stages."""

    def __init__(self, dim: int, d_model: int) -> None:
        super().__init__()
        self.inp = nn.Conv1d(dim, d_model, 3, 1, 1)
        self.up = nn.ModuleList(nn.Conv1d(d_model, d_model, 5, 1, 2) for _ in range(2))
        self.post = nn.Sequential(nn.ReLU(), nn.Conv1d(d_model, d_model, 5, 1, 2), nn.ReLU())
        self.out = nn.Conv1d(d_model, N_MELS, 1)

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.inp(z_q.transpose(1, 2)))
        for conv in self.up:
            h = F.relu(conv(F.interpolate(h, scale_factor=2.0, mode="nearest")))
        out: torch.Tensor = self.out(self.post(h) + h).transpose(1, 2)
        return out


class UnitModel(nn.Module):
    """Converter (encoder + :class:`VectorQuantizer`) and inverter, trained as VQ-VAE (``lam = 0``) or XL-VAE."""

    def __init__(self, codebook_size: int, dim: int, d_model: int, temperature: float = 0.1) -> None:
        super().__init__()
        self.encoder = DownsamplingEncoder(d_model, dim, layers=2)
        self.quantizer = VectorQuantizer(codebook_size, dim)
        self.inverter = Inverter(dim, d_model)
        self.blank = nn.Parameter(torch.zeros(dim))
        # log(1 / tau), learned: the encoder's frames start small, and a fixed tau = 1 leaves the distance logits
        # nearly uniform (CTC then sits at chance, about log K nats a phoneme, and teaches nothing).
        self.log_inv_temperature = nn.Parameter(torch.tensor(-math.log(temperature)))

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, T, 80) -> (B, ceil(T/4), D)`` continuous frames ``z_e``."""
        out: torch.Tensor = self.encoder(mel)
        return out

    def quantize(self, z_e: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise the valid frames of ``z_e`` ``(B, T', D)``: codes ``(B, T')`` (-1 at padding), straight-through
        ``z_q`` and the mean commitment over valid frames."""
        valid = ~padding_mask(lengths, z_e.shape[1])
        codes, quantized, commitment = self.quantizer(z_e[valid])
        z_q = torch.zeros_like(z_e)
        z_q[valid] = quantized
        all_codes = torch.full(valid.shape, -1, dtype=torch.long, device=z_e.device)
        all_codes[valid] = codes
        return all_codes, z_q, commitment.mean()

    def tokens(self, mel: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """The converter: one ``(T'_i,)`` code sequence per utterance (call in eval mode)."""
        small = downsampled_lengths(lengths)
        codes, _, _ = self.quantize(self.encode(mel), small)
        return [codes[i, : int(n)] for i, n in enumerate(small)]

    def resynthesise(self, mel: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """Converter then inverter, the units' round trip: one ``(T_i, 80)`` mel per utterance (call in eval mode).
        Scored by a recogniser, it is the ceiling of a pipeline on these units: its translator made no error."""
        return [self.invert(codes[None])[0, : int(n)] for codes, n in zip(self.tokens(mel, lengths), lengths)]

    def invert(self, codes: torch.Tensor) -> torch.Tensor:
        """The inverter from tokens: ``(B, T')`` codes -> ``(B, 4 T', 80)`` mel."""
        out: torch.Tensor = self.inverter(self.quantizer.codebook[codes.clamp_min(0)])
        return out

    def ctc_log_probs(self, z_e: torch.Tensor) -> torch.Tensor:
        """``(B, T', 1 + K)`` log-probabilities: blank, then code ``k`` with logit ``-||z_e - e_k||^2 / tau``."""
        codes = torch.cat([self.blank[None], self.quantizer.codebook], 0)
        # expanded as ||z||^2 - 2 z.e + ||e||^2: a matrix product, not a (B, T', 1 + K, D) difference tensor
        distances = squared_distances(z_e, codes)
        return F.log_softmax(-distances * self.log_inv_temperature.exp(), -1)

    def losses(
        self,
        mel: torch.Tensor,
        lengths: torch.Tensor,
        written: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None,
        lam: float,
        beta: float,
    ) -> dict[str, torch.Tensor]:
        """``L_VQ`` on target speech (L1 reconstruction + ``beta`` commitment) plus ``lam`` times the CTC term on
        ``written = (mel, lengths, phoneme targets (B, S) padded with 0, target lengths)``."""
        small = downsampled_lengths(lengths)
        z_e = self.encode(mel)
        codes, z_q, commitment = self.quantize(z_e, small)
        mel_hat = self.inverter(z_q)[:, : mel.shape[1]]
        frames = ~padding_mask(lengths, mel.shape[1])
        recon = (mel_hat - mel).abs().mean(-1)[frames].mean()
        out = {
            "recon": recon,
            "commit": commitment,
            "perplexity": torch.tensor(perplexity(codes[codes >= 0], self.quantizer.size)),
        }
        loss = recon + beta * commitment
        if written is not None and lam > 0:
            w_mel, w_len, targets, target_len = written
            w_small = downsampled_lengths(w_len)
            w_z = self.encode(w_mel)
            _, _, w_commit = self.quantize(w_z, w_small)  # the written speech shapes the codebook too
            log_probs = self.ctc_log_probs(w_z).transpose(0, 1)
            ctc = F.ctc_loss(log_probs, targets, w_small, target_len, blank=0, zero_infinity=True)
            out["ctc"] = ctc
            loss = loss + lam * ctc + beta * w_commit
        out["loss"] = loss
        return out


class SpeechEncoder(nn.Module):
    """Source mel ``(B, T, 80)`` -> ``(B, ceil(T/4), d)`` memory: :class:`DownsamplingEncoder` + positions +
    Transformer encoder layers; also returns the memory's padding mask."""

    def __init__(self, d_model: int, num_heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.front = DownsamplingEncoder(d_model, d_model)
        attention = lambda: MultiHeadAttention(d_model, num_heads, dropout)  # noqa: E731
        self.layers = nn.ModuleList(EncoderLayer(d_model, 4 * d_model, attention, dropout) for _ in range(layers))
        self.d_model = d_model

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.front(mel)
        x = x + sinusoidal_positions(x.shape[1], self.d_model).to(x)
        padding = padding_mask(downsampled_lengths(lengths), x.shape[1])
        for layer in self.layers:
            x = layer(x, padding)
        return x, padding


PAD, BOS, EOS, FIRST_CODE = 0, 1, 2, 3
"""Translator vocabulary: padding, begin, end, then code ``k`` is token ``3 + k``."""


class UnitTranslator(nn.Module):
    """The translator: source speech -> target-unit tokens, a Transformer encoder-decoder (greedy decoding)."""

    def __init__(self, codebook_size: int, d_model: int, num_heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.encoder = SpeechEncoder(d_model, num_heads, layers, dropout)
        attention = lambda: MultiHeadAttention(d_model, num_heads, dropout)  # noqa: E731
        self.decoder = nn.ModuleList(DecoderLayer(d_model, 4 * d_model, attention, dropout) for _ in range(layers))
        self.embed = nn.Embedding(FIRST_CODE + codebook_size, d_model, padding_idx=PAD)
        self.out = nn.Linear(d_model, FIRST_CODE + codebook_size)
        self.d_model = d_model

    def decode(self, tokens: torch.Tensor, memory: torch.Tensor, src_padding: torch.Tensor) -> torch.Tensor:
        y = self.embed(tokens) * math.sqrt(self.d_model)
        y = y + sinusoidal_positions(y.shape[1], self.d_model).to(y)
        tgt_padding = tokens == PAD
        for layer in self.decoder:
            y = layer(y, memory, tgt_padding, src_padding)
        out: torch.Tensor = self.out(y)
        return out

    def loss(self, mel: torch.Tensor, lengths: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy of ``tokens`` ``(B, S)`` = ``[BOS, units..., EOS, PAD...]`` under teacher forcing."""
        memory, src_padding = self.encoder(mel, lengths)
        logits = self.decode(tokens[:, :-1], memory, src_padding)
        target = tokens[:, 1:]
        ce = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=PAD, label_smoothing=0.1)
        accuracy = (logits.argmax(-1) == target)[target != PAD].float().mean()
        return {"loss": ce, "accuracy": accuracy}

    @torch.no_grad()
    def translate_units(self, mel: torch.Tensor, lengths: torch.Tensor, max_ratio: float = 1.5) -> list[torch.Tensor]:
        """Greedy decoding: one code sequence (``(S_i,)``, codes not tokens) per source utterance."""
        memory, src_padding = self.encoder(mel, lengths)
        max_len = int(downsampled_lengths(lengths).max() * max_ratio) + 4
        tokens = torch.full((len(mel), 1), BOS, dtype=torch.long)
        done = torch.zeros(len(mel), dtype=torch.bool)
        for _ in range(max_len):
            nxt = self.decode(tokens, memory, src_padding)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            tokens = torch.cat([tokens, nxt[:, None]], 1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        units = []
        for row in tokens[:, 1:]:
            stop = (row == EOS) | (row == PAD)
            end = int(stop.nonzero()[0]) if bool(stop.any()) else len(row)
            units.append((row[:end] - FIRST_CODE).clamp_min(0))
        return units


class UWSpeech(nn.Module):
    """The full system: ``translate(source mels) -> target mels`` = inverter(translator(source))."""

    def __init__(self, units: UnitModel, translator: UnitTranslator, label: str) -> None:
        super().__init__()
        self.units, self.translator, self.label = units, translator, label

    @torch.no_grad()
    def translate(self, mel: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """``(B, T, 80)`` padded source mels -> one ``(T_i, 80)`` target mel per utterance."""
        out = []
        for codes in self.translator.translate_units(mel, lengths):
            codes = codes if len(codes) else torch.zeros(1, dtype=torch.long)
            out.append(self.units.invert(codes[None])[0])
        return out

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> Any:
        return self.translate(mel, lengths)
