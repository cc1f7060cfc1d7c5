"""FastSpeech 2 (Ren et al., 2020): encoder, variance adaptor, mel decoder, losses, controllable inference.

``FastSpeech2(config)`` with ``config.pitch`` one of

* ``"cwt"`` -- the paper's final version: the pitch predictor regresses the 10-scale CWT pitch spectrogram of the
  per-utterance z-normalised log-F0, and an MLP on the time-mean of the encoder output predicts the utterance's
  log-F0 mean and standard deviation; inference inverts the CWT
  (:func:`~reprobook.fastspeech2.variance.cwt_reconstruct`)
  and de-normalises;
* ``"frame"`` -- the first version (v1): frame-level log-F0 regressed directly (z-normalised with corpus statistics);
* ``"none"`` -- no pitch predictor or embedding: with ``energy=False`` this is the FastSpeech student.

Pitch and energy predictors both read the length-regulated ``H'`` (frame level, as in the paper, Fig. 1b); the
embeddings of the bucketised pitch (log-spaced bins over 80-300 Hz) and energy (uniform bins) are added at
frame level: ``H'' = H' + E_p + E_e`` (fused in :func:`reprobook.kernels.variance_regulate`). The decoder sees
``H'' + PE`` and a linear layer gives the 80-band log-mel. No PostNet (it is not in the paper; pitfall 10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from reprobook._validate import check_choice, check_range
from reprobook.data.speech import N_MELS
from reprobook.fastspeech2.data import Batch
from reprobook.fastspeech2.variance import (
    NUM_SCALES,
    VariancePredictor,
    check_durations,
    cwt_reconstruct,
    durations_to_mel2ph,
    linear_bins,
    log_bins,
    regulate_with_mel2ph,
)
from reprobook.kernels import variance_regulate
from reprobook.nn.transformer import FFTBlock, padding_mask, sinusoidal_positions
from reprobook.profiles import pick_default

PITCH_MODES = ("cwt", "frame", "none")
F0_LOW, F0_HIGH = 80.0, 300.0
"""The pitch bins' span in Hz: the corpus's voices (1st to 95th percentile of voiced F0 about 100 to 180 Hz, a
longer tail above) with room for the pitch control's x0.8 and x1.2."""


@dataclass
class FastSpeech2Config:
    """Sizes of one model. The paper: d = 256, 4 + 4 FFT blocks, 2 heads, conv kernels 9/1, filter 1024, 256
    pitch and energy bins; the ``full`` profile. ``book`` shrinks it to fit 2 CPU cores: d = 64, 2 + 2 blocks,
    kernels 3/1, and 64 bins, since each of 256 bins' embeddings would see too few frames to learn in a few
    hundred steps (measured: with 256 bins the Griffin-Lim audio came out far less often voiced)."""

    vocab_size: int
    d_model: int = pick_default(smoke=32, book=64, full=256)
    num_heads: int = 2
    encoder_layers: int = pick_default(smoke=1, book=2, full=4)
    decoder_layers: int = pick_default(smoke=1, book=2, full=4)
    d_ff: int = pick_default(smoke=64, book=192, full=1024)
    kernel_sizes: tuple[int, int] = pick_default(smoke=(3, 1), book=(3, 1), full=(9, 1))
    dropout: float = 0.1
    predictor_filter: int = pick_default(smoke=32, book=64, full=256)
    predictor_dropout: float = 0.5
    num_bins: int = pick_default(smoke=64, book=64, full=256)
    pitch_range_hz: tuple[float, float] = (F0_LOW, F0_HIGH)
    pitch: Literal["cwt", "frame", "none"] = "cwt"
    energy: bool = True
    n_mels: int = N_MELS
    max_len: int = 2048

    def __post_init__(self) -> None:
        check_choice("pitch", self.pitch, PITCH_MODES)
        check_range("vocab_size", self.vocab_size, 2, 1_000_000)


@dataclass
class Stats:
    """Corpus statistics the model needs to de-normalise: log-F0 and ``log(1 + energy)`` mean and std."""

    lf0_mean: float
    lf0_std: float
    energy_mean: float
    energy_std: float


class FastSpeech2(nn.Module):
    """``forward(batch) -> dict`` of predictions with ground-truth variances (training, Sec. 2.2);
    :meth:`infer` predicts everything from phonemes, with speed/pitch/energy controls (Sec. 2.3)."""

    positions: torch.Tensor
    pitch_bins: torch.Tensor
    energy_bins: torch.Tensor
    pitch_table_off: torch.Tensor
    energy_table_off: torch.Tensor
    stats_buffer: torch.Tensor

    def __init__(self, config: FastSpeech2Config, stats: Stats) -> None:
        super().__init__()
        c = self.config = config
        d = c.d_model
        self.embed = nn.Embedding(c.vocab_size, d, padding_idx=0)
        self.register_buffer("positions", sinusoidal_positions(c.max_len, d), persistent=False)
        block = lambda: FFTBlock(d, c.num_heads, c.d_ff, c.kernel_sizes, c.dropout)  # noqa: E731
        self.encoder = nn.ModuleList(block() for _ in range(c.encoder_layers))
        self.decoder = nn.ModuleList(block() for _ in range(c.decoder_layers))
        self.mel_out = nn.Linear(d, c.n_mels)
        self.duration_predictor = VariancePredictor(d, c.predictor_filter, 1, dropout=c.predictor_dropout)
        pitch_dim = NUM_SCALES if c.pitch == "cwt" else 1
        self.pitch_predictor = (
            VariancePredictor(d, c.predictor_filter, pitch_dim, dropout=c.predictor_dropout)
            if c.pitch != "none"
            else None
        )
        self.pitch_stats = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 2)) if c.pitch == "cwt" else None
        self.energy_predictor = (
            VariancePredictor(d, c.predictor_filter, 1, dropout=c.predictor_dropout) if c.energy else None
        )
        self.register_buffer("pitch_bins", log_bins(*c.pitch_range_hz, c.num_bins))
        self.register_buffer("energy_bins", linear_bins(-3.0, 3.0, c.num_bins))
        self.pitch_table = nn.Embedding(c.num_bins, d) if c.pitch != "none" else None
        self.energy_table = nn.Embedding(c.num_bins, d) if c.energy else None
        self.register_buffer("pitch_table_off", torch.zeros(c.num_bins, d), persistent=False)
        self.register_buffer("energy_table_off", torch.zeros(c.num_bins, d), persistent=False)
        self.register_buffer(
            "stats_buffer", torch.tensor([stats.lf0_mean, stats.lf0_std, stats.energy_mean, stats.energy_std])
        )

    # ---------------------------------------------------------------------------------------------------------
    def encode(self, phonemes: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``H = Enc(Emb(x) + PE)``: ``phonemes (B, N) -> (H (B, N, d), padding (B, N))``."""
        if phonemes.ndim != 2 or phonemes.shape[1] == 0:
            raise ValueError(f"phonemes must be a non-empty (B, N) tensor of ids, got shape {tuple(phonemes.shape)}")
        if phonemes.shape[1] > self.config.max_len:
            raise ValueError(f"{phonemes.shape[1]} phonemes exceed max_len={self.config.max_len}")
        padding = padding_mask(src_lengths, phonemes.shape[1])
        x = self.embed(phonemes) + self.positions[: phonemes.shape[1]]
        x = x.masked_fill(padding[..., None], 0.0)
        for layer in self.encoder:
            x = layer(x, padding)
        return x, padding

    def decode(self, h2: torch.Tensor, frame_padding: torch.Tensor) -> torch.Tensor:
        """``Y = Linear(Dec(H'' + PE))``: ``(B, T, d) -> (B, T, n_mels)``."""
        if h2.shape[1] > self.config.max_len:
            raise ValueError(f"{h2.shape[1]} frames exceed max_len={self.config.max_len}")
        y = h2 + self.positions[: h2.shape[1]] * (~frame_padding)[..., None]
        for layer in self.decoder:
            y = layer(y, frame_padding)
        out: torch.Tensor = self.mel_out(y)
        return out

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.pitch_table.weight if self.pitch_table is not None else self.pitch_table_off
        e = self.energy_table.weight if self.energy_table is not None else self.energy_table_off
        return p, e

    def _embed_variances(
        self, h: torch.Tensor, mel2ph: torch.Tensor, f0: torch.Tensor, energy: torch.Tensor
    ) -> torch.Tensor:
        """``H'' = LR(H, d) + E_p[bucket(F0)] + E_e[bucket(energy)]`` (one fused kernel on CUDA)."""
        p_table, e_table = self._tables()
        return variance_regulate(h, mel2ph, f0, energy, self.pitch_bins, self.energy_bins, p_table, e_table)

    def _predict_variances(
        self, h: torch.Tensor, src_padding: torch.Tensor, hp: torch.Tensor, frame_padding: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.pitch_predictor is not None:
            out["pitch"] = self.pitch_predictor(hp, frame_padding)
        if self.pitch_stats is not None:
            keep = (~src_padding)[..., None].to(h.dtype)
            out["pitch_stats"] = self.pitch_stats((h * keep).sum(1) / keep.sum(1).clamp(min=1.0))
        if self.energy_predictor is not None:
            out["energy"] = self.energy_predictor(hp, frame_padding).squeeze(-1)
        return out

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Teacher-forced variances (true durations, F0, energy). Returns ``mel (B, T, 80)``, ``log_duration
        (B, N)``, ``pitch`` (``(B, T, 10)`` CWT or ``(B, T, 1)`` F0), ``pitch_stats (B, 2)``, ``energy (B, T)``,
        ``hidden`` (``H''``, for FastSpeech 2s) and ``frame_padding (B, T)``."""
        h, src_padding = self.encode(batch.phonemes, batch.src_lengths)
        durations = check_durations(batch.durations, batch.phonemes.shape[1])
        mel2ph = durations_to_mel2ph(durations, batch.mel.shape[1])
        frame_padding = mel2ph == 0
        out = {"log_duration": self.duration_predictor(h, src_padding).squeeze(-1), "frame_padding": frame_padding}
        hp = regulate_with_mel2ph(h, mel2ph)
        out.update(self._predict_variances(h, src_padding, hp, frame_padding))
        h2 = self._embed_variances(h, mel2ph, batch.f0, batch.energy)
        out["hidden"] = h2
        out["mel"] = self.decode(h2, frame_padding)
        return out

    # ---------------------------------------------------------------------------------------------------------
    def loss(self, out: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        """Mel MAE + duration MSE on ``log(d + 1)`` + pitch (CWT: L1 on the spectrogram and on the utterance
        mean/std, as NATSpeech; v1: MSE on log-F0) + energy MSE, each masked to the real phonemes or frames."""
        frames = (~out["frame_padding"]).to(out["mel"].dtype)
        n_frames = frames.sum().clamp(min=1.0)
        phon = (batch.phonemes != 0).to(out["mel"].dtype)
        mel = ((out["mel"] - batch.mel).abs().mean(-1) * frames).sum() / n_frames
        target_d = torch.log(batch.durations.to(out["mel"].dtype) + 1.0)
        duration = ((out["log_duration"] - target_d) ** 2 * phon).sum() / phon.sum().clamp(min=1.0)
        losses = {"mel": mel, "duration": duration}
        s = self.stats_buffer
        if self.config.pitch == "cwt":
            losses["pitch"] = ((out["pitch"] - batch.cwt).abs().mean(-1) * frames).sum() / n_frames
            target_stats = torch.stack([(batch.lf0_stats[:, 0] - s[0]) / s[1], batch.lf0_stats[:, 1] / s[1]], -1)
            losses["pitch"] = losses["pitch"] + (out["pitch_stats"] - target_stats).abs().mean()
        elif self.config.pitch == "frame":
            z = (torch.log(batch.f0.clamp(min=1.0)) - s[0]) / s[1]
            losses["pitch"] = ((out["pitch"].squeeze(-1) - z) ** 2 * frames).sum() / n_frames
        if self.config.energy:
            losses["energy"] = ((out["energy"] - batch.energy) ** 2 * frames).sum() / n_frames
        losses["loss"] = sum(losses.values(), torch.zeros((), device=mel.device))
        return losses

    # ---------------------------------------------------------------------------------------------------------
    def pitch_from_prediction(self, out: dict[str, torch.Tensor], frame_padding: torch.Tensor) -> torch.Tensor:
        """Predicted F0 in Hz ``(B, T)`` (0 at padding) from the pitch predictor's output."""
        s = self.stats_buffer
        keep = ~frame_padding
        if self.config.pitch == "cwt":
            z = cwt_reconstruct(out["pitch"], keep)
            mean = out["pitch_stats"][:, 0:1] * s[1] + s[0]
            std = out["pitch_stats"][:, 1:2].clamp(min=0.01) * s[1]
            lf0 = mean + std * z
        else:
            lf0 = out["pitch"].squeeze(-1) * s[1] + s[0]
        return torch.exp(lf0) * keep

    @torch.no_grad()
    def infer(
        self,
        phonemes: torch.Tensor,
        src_lengths: torch.Tensor | None = None,
        *,
        speed: float = 1.0,
        pitch: float = 1.0,
        energy: float = 1.0,
        durations: torch.Tensor | None = None,
        decode_mel: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Synthesise from phonemes ``(B, N)`` (or ``(N,)``): ``mel (B, T, 80)``, ``mel_lengths``, ``durations``,
        ``f0`` (Hz), ``energy`` (normalised), ``hidden``.

        Controls (Sec. 2.3): ``speed`` divides the predicted durations (``d = round((exp(l) - 1) / speed)``;
        ``speed = 1.25`` gives 20 % shorter speech), ``pitch`` multiplies the predicted F0 and ``energy`` the
        predicted (linear) energy, each before bucketing. ``energy`` reads the energy control: ming024's version
        passes the pitch control there (issue 117 of the notes' pitfall 3). ``durations`` forces durations (oracle).
        ``decode_mel=False`` skips the mel decoder (FastSpeech 2s needs only ``hidden``).
        """
        for name, value in (("speed", speed), ("pitch", pitch), ("energy", energy)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a positive finite number (a scale; 1 = unchanged)")
        if phonemes.ndim == 1:
            phonemes = phonemes[None]
        if src_lengths is None:
            src_lengths = (phonemes != 0).sum(1)
        h, src_padding = self.encode(phonemes, src_lengths)
        if durations is None:
            log_d = self.duration_predictor(h, src_padding).squeeze(-1)
            durations = torch.clamp(torch.round((torch.exp(log_d) - 1.0) / speed), min=0).long()
            durations = durations.masked_fill(src_padding, 0)
            empty = durations.sum(1) == 0  # all-zero durations would give no frame at all (pitfall 8)
            if bool(empty.any()):
                durations[empty, 0] = 1
        else:
            durations = check_durations(durations, phonemes.shape[1]).to(phonemes.device)
        mel2ph = durations_to_mel2ph(durations)
        frame_padding = mel2ph == 0
        hp = regulate_with_mel2ph(h, mel2ph)
        pred = self._predict_variances(h, src_padding, hp, frame_padding)
        s = self.stats_buffer
        if self.config.pitch != "none":
            f0 = self.pitch_from_prediction(pred, frame_padding) * pitch
        else:
            f0 = torch.zeros(mel2ph.shape, device=h.device)
        if self.config.energy:
            linear = torch.expm1(pred["energy"] * s[3] + s[2]).clamp(min=0) * energy
            e = (torch.log1p(linear) - s[2]) / s[3]
        else:
            e = torch.zeros(mel2ph.shape, device=h.device)
        h2 = self._embed_variances(h, mel2ph, f0, e)
        mel = self.decode(h2, frame_padding) if decode_mel else h2.new_zeros(*h2.shape[:2], self.config.n_mels)
        return {
            "mel": mel,
            "mel_lengths": (~frame_padding).sum(1),
            "durations": durations,
            "f0": f0,
            "energy": e,
            "hidden": h2,
            "frame_padding": frame_padding,
        }
