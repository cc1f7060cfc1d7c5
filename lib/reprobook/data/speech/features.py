"""Frame-level acoustic features: log-mel spectrogram, phoneme durations, pitch and energy.

The frame grid is the FastSpeech 2 / LJSpeech one: 22.05 kHz audio, ``n_fft = win = 1024``,
``hop = 256`` (11.6 ms), 80 mel bands from 0 to 8 kHz. Frames are centred (``center=True``, reflect
padding): frame ``t`` is centred on sample ``t * hop``, so an ``L``-sample waveform has
``1 + L // hop`` frames (:func:`frame_count`). Every feature here uses that grid, so mel, durations,
pitch and energy always agree on ``T``.
"""

from __future__ import annotations

import functools
import math

import torch
import torchaudio

from reprobook._validate import check_range
from reprobook.data.speech.espeak import SAMPLE_RATE, Utterance

N_FFT = 1024
WIN_LENGTH = 1024
HOP_LENGTH = 256
N_MELS = 80
F_MIN = 0.0
F_MAX = 8000.0
LOG_CLAMP = 1e-5
"""Mel magnitudes are clamped here before the log, so silence reads ``log(1e-5) = -11.5``."""

F0_MIN = 50.0
F0_MAX = 600.0
"""Pitch search range in Hz, wide enough for espeak's pitch settings 0 to 100."""


def frame_count(num_samples: int) -> int:
    """Frames in a centred STFT of ``num_samples`` samples: ``1 + num_samples // HOP_LENGTH``."""
    return 1 + num_samples // HOP_LENGTH


@functools.lru_cache(maxsize=1)
def _mel_transform() -> torchaudio.transforms.MelSpectrogram:
    # Magnitude (power 1) with Slaney mel filters: the librosa defaults used by Tacotron 2,
    # HiFi-GAN and FastSpeech 2 for LJSpeech.
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=SAMPLE_RATE,
        n_fft=N_FFT,
        win_length=WIN_LENGTH,
        hop_length=HOP_LENGTH,
        f_min=F_MIN,
        f_max=F_MAX,
        n_mels=N_MELS,
        power=1.0,
        norm="slaney",
        mel_scale="slaney",
        center=True,
        pad_mode="reflect",
    )


def _check_waveform(waveform: torch.Tensor) -> None:
    if not isinstance(waveform, torch.Tensor) or not waveform.is_floating_point():
        kind = waveform.dtype if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise ValueError(f"waveform must hold floats in [-1, 1], got {kind}; convert 16-bit PCM with x.float() / 32768")
    if waveform.ndim != 1 or waveform.numel() <= N_FFT // 2:
        raise ValueError(f"waveform must be 1-D with more than {N_FFT // 2} samples, got shape {tuple(waveform.shape)}")


def log_mel(waveform: torch.Tensor) -> torch.Tensor:
    """Log-mel spectrogram ``log(clamp(mel, 1e-5))``: ``(L,)`` -> ``(N_MELS, frame_count(L))``."""
    _check_waveform(waveform)
    mel = _mel_transform()(waveform.to(torch.float32))
    return torch.log(torch.clamp(mel, min=LOG_CLAMP))


def frame_energy(waveform: torch.Tensor) -> torch.Tensor:
    """Energy as in FastSpeech 2: the L2 norm of each linear STFT magnitude frame. ``(L,)`` -> ``(T,)``."""
    _check_waveform(waveform)
    spectrum = torch.stft(
        waveform.to(torch.float32),
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=WIN_LENGTH,
        window=torch.hann_window(WIN_LENGTH),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    return torch.linalg.vector_norm(spectrum.abs(), dim=0)


def frame_pitch(
    waveform: torch.Tensor, f0_min: float = F0_MIN, f0_max: float = F0_MAX, threshold: float = 0.25
) -> torch.Tensor:
    """Fundamental frequency in Hz per frame, 0 where unvoiced or silent. ``(L,)`` -> ``(T,)``.

    The YIN estimator (de Cheveigné & Kawahara, 2002) on ``N_FFT``-sample frames of the centred grid.
    For lags ``tau`` up to ``tau_max = SAMPLE_RATE / f0_min`` and an integration window
    ``W = N_FFT - tau_max``, the difference function (Eq. 6) is
    ``d(tau) = sum_{j < W} (x_j - x_{j + tau})^2``, normalised by its running mean (Eq. 8):
    ``d'(tau) = d(tau) * tau / sum_{k=1..tau} d(k)``. The period is the first local minimum of
    ``d'`` below ``threshold`` (step 4; the paper's 0.1 misses many espeak frames, whose pitch glides
    fast), refined by parabolic interpolation (step 5). An octave check guards against the half
    period: a dip above 0.1 is replaced by twice its lag where ``d'`` is less than half as large.
    A frame with no dip, or quieter than -60 dBFS, is unvoiced.
    """
    _check_waveform(waveform)
    check_range("f0_min", f0_min, 2 * SAMPLE_RATE / N_FFT, SAMPLE_RATE / 8)
    check_range("f0_max", f0_max, 2 * f0_min, SAMPLE_RATE / 4)
    check_range("threshold", threshold, 0.0, 1.0)
    tau_min = max(2, math.floor(SAMPLE_RATE / f0_max))
    tau_max = math.ceil(SAMPLE_RATE / f0_min)
    window = N_FFT - tau_max
    x = waveform.to(torch.float32)
    frames = torch.nn.functional.pad(x[None, None], (N_FFT // 2, N_FFT // 2), mode="reflect")[0, 0]
    frames = frames.unfold(0, N_FFT, HOP_LENGTH)  # (T, N_FFT)
    # Cross term r(tau) = sum_{j < W} x_j x_{j + tau} for all tau at once, by FFT correlation.
    size = 2 * N_FFT
    spectrum = torch.fft.rfft(frames, n=size) * torch.fft.rfft(frames[:, :window], n=size).conj()
    cross = torch.fft.irfft(spectrum, n=size)[:, : tau_max + 1]
    energy = torch.nn.functional.pad(torch.cumsum(frames**2, dim=1), (1, 0))  # (T, N_FFT + 1)
    taus = torch.arange(tau_max + 1)
    shifted = energy[:, taus + window] - energy[:, taus]  # sum_{j < W} x_{j + tau}^2
    diff = torch.clamp(energy[:, window : window + 1] + shifted - 2 * cross, min=0.0)
    running = torch.cumsum(diff[:, 1:], dim=1) / taus[1:]
    cmnd = torch.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / torch.clamp(running, min=1e-12)
    # First tau in [tau_min, tau_max - 1] with cmnd below threshold and no higher than its neighbours.
    centre = cmnd[:, tau_min:tau_max]
    is_dip = (
        (centre < threshold)
        & (centre <= cmnd[:, tau_min - 1 : tau_max - 1])
        & (centre <= cmnd[:, tau_min + 1 : tau_max + 1])
    )
    voiced = is_dip.any(dim=1) & (energy[:, window] / window > 1e-6)  # mean square above -60 dBFS
    tau = tau_min + is_dip.to(torch.int8).argmax(dim=1)
    rows = torch.arange(frames.shape[0])
    # Octave check: a strong 2nd harmonic (F1 near 2 F0) can dip below threshold at half the period.
    # A dip that the paper's threshold (0.1) would reject is doubtful: if d' is less than half as
    # large around twice its lag, that is the period.
    double = torch.clamp(2 * tau, max=tau_max - 2)[:, None] + torch.arange(-1, 2)
    double_value, double_offset = cmnd[rows[:, None], double].min(dim=1)
    doubtful = cmnd[rows, tau] > 0.1
    octave_down = doubtful & (2 * tau + 2 <= tau_max) & (double_value < 0.5 * cmnd[rows, tau])
    tau = torch.where(octave_down, double[rows, double_offset], tau)
    before, at, after = cmnd[rows, tau - 1], cmnd[rows, tau], cmnd[rows, tau + 1]
    curvature = before - 2 * at + after
    shift = torch.where(curvature > 0, 0.5 * (before - after) / curvature.clamp(min=1e-12), 0.0)
    f0 = SAMPLE_RATE / (tau + shift.clamp(-1.0, 1.0))
    return torch.where(voiced, f0, 0.0).to(torch.float32)


def durations_in_frames(utterance: Utterance, num_frames: int) -> torch.Tensor:
    """Frames per phoneme, ``(N,)`` int64, ``>= 0``, summing exactly to ``num_frames``.

    A frame belongs to the phoneme sounding at its centre ``t * HOP_LENGTH``: phoneme ``i`` ending at
    sample ``e_i`` has ``ceil(e_i / hop)`` frames up to and including it. The last boundary is then
    set to ``num_frames`` (the final frame is centred on or past the end of the audio). ``num_frames``
    must be within 2 of the waveform's :func:`frame_count`, to tolerate other padding conventions.
    """
    expected = frame_count(utterance.waveform.numel())
    check_range("num_frames", num_frames, expected - 2, expected + 2)
    ends_in_frames = torch.div(utterance.ends + HOP_LENGTH - 1, HOP_LENGTH, rounding_mode="floor")  # ceil
    boundaries = torch.clamp(ends_in_frames, 0, num_frames)
    boundaries[-1] = num_frames
    return torch.diff(boundaries, prepend=torch.zeros(1, dtype=torch.int64))
