"""FastSpeech 2 and 2s (Ren et al., 2020): encoder, variance adaptor, mel decoder, losses, controllable inference.

``FastSpeech2(config, vocab_size, stats)`` with ``config.pitch`` one of

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

:class:`FastSpeech2s` (Sec. 2.4) is a :class:`FastSpeech2`, whose mel decoder becomes a training-time auxiliary,
plus the waveform decoder of :mod:`~reprobook.fastspeech2.wave`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from reprobook._validate import check_int
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
from reprobook.fastspeech2.wave import WaveDecoder
from reprobook.kernels import variance_regulate
from reprobook.nn.transformer import FFTBlock, padding_mask, sinusoidal_positions
from reprobook.nn.utils import eval_mode

if TYPE_CHECKING:
    from reprobook.fastspeech2.train import FastSpeech2Config

PITCH_MODES = ("cwt", "frame", "none")
F0_LOW, F0_HIGH = 80.0, 300.0
"""The pitch bins' span in Hz: the corpus's voices (1st to 95th percentile of voiced F0 about 100 to 180 Hz, a
longer tail above) with room for the pitch control's x0.8 and x1.2."""


@dataclass
class Stats:
    """Corpus statistics the model needs to de-normalise: log-F0 and ``log(1 + energy)`` mean and std."""

    lf0_mean: float
    lf0_std: float
    energy_mean: float
    energy_std: float


class FastSpeech2(nn.Module):
    """``forward(batch) -> dict`` of predictions with ground-truth variances (training, Sec. 2.2);
    :meth:`infer` predicts everything from phonemes, with speed/pitch/energy controls (Sec. 2.3).

    ``config``: the sizes and switches of a :class:`~reprobook.fastspeech2.FastSpeech2Config` (``d_model``, the
    layers, ``pitch``, ``energy``, ...); ``vocab_size``: phoneme ids ``0 .. vocab_size - 1`` (0 = padding);
    ``stats``: the training set's statistics. :func:`~reprobook.fastspeech2.build_model` makes one for the data.
    """

    positions: torch.Tensor
    pitch_bins: torch.Tensor
    energy_bins: torch.Tensor
    pitch_table_off: torch.Tensor
    energy_table_off: torch.Tensor
    stats_buffer: torch.Tensor

    def __init__(self, config: FastSpeech2Config, vocab_size: int, stats: Stats) -> None:
        super().__init__()
        check_int("vocab_size", vocab_size, 2)
        c = self.config = config
        d = c.d_model
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.register_buffer("positions", sinusoidal_positions(c.max_len, d), persistent=False)
        block = lambda: FFTBlock(d, c.num_heads, c.d_ff, c.kernel_sizes, c.dropout)  # noqa: E731
        self.encoder = nn.ModuleList(block() for _ in range(c.encoder_layers))
        self.decoder = nn.ModuleList(block() for _ in range(c.decoder_layers))
        self.mel_out = nn.Linear(d, N_MELS)
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
        """``Y = Linear(Dec(H'' + PE))``: ``(B, T, d) -> (B, T, 80)``."""
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
        totals = durations.sum(1).to(batch.mel_lengths.device)
        if not torch.equal(totals, batch.mel_lengths.to(totals.dtype)):
            bad = int((totals != batch.mel_lengths).nonzero()[0, 0])
            raise ValueError(
                f"batch.durations of utterance {bad} sum to {int(totals[bad])} frames but batch.mel_lengths[{bad}] "
                f"is {int(batch.mel_lengths[bad])}: durations must sum to each mel's length (use collate)"
            )
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
        ``decode_mel=False`` skips the mel decoder (FastSpeech 2s needs only ``hidden``). Runs in eval mode
        (no dropout) and gives the model back in the mode it was in.
        """
        for name, value in (("speed", speed), ("pitch", pitch), ("energy", energy)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a positive finite number (a scale; 1 = unchanged)")
        if phonemes.ndim == 1:
            phonemes = phonemes[None]
        if src_lengths is None:
            src_lengths = (phonemes != 0).sum(1)
        with eval_mode(self):
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
            mel = self.decode(h2, frame_padding) if decode_mel else h2.new_zeros(*h2.shape[:2], N_MELS)
            return {
                "mel": mel,
                "mel_lengths": (~frame_padding).sum(1),
                "durations": durations,
                "f0": f0,
                "energy": e,
                "hidden": h2,
                "frame_padding": frame_padding,
            }


class FastSpeech2s(nn.Module):
    """FastSpeech 2 (whose mel decoder is the training-time auxiliary) plus a waveform decoder (Sec. 2.4)."""

    def __init__(self, acoustic: FastSpeech2, wave: WaveDecoder) -> None:
        super().__init__()
        self.acoustic, self.wave = acoustic, wave

    @torch.no_grad()
    def infer(self, phonemes: torch.Tensor, **controls: float) -> dict[str, torch.Tensor]:
        """:meth:`FastSpeech2.infer` without the mel decoder, plus ``waveform (B, T * 256)``; in eval mode."""
        with eval_mode(self):
            out = self.acoustic.infer(phonemes, decode_mel=False, **controls)  # type: ignore[arg-type]
            out["waveform"] = self.wave(out["hidden"])
        return out

    def synthesize(self, phonemes: torch.Tensor, **controls: float) -> torch.Tensor:
        """Phonemes ``(N,)`` -> waveform ``(L,)``; the mel decoder is not run."""
        return self.infer(phonemes, **controls)["waveform"][0]
