"""The variance adaptor's pieces: length regulator, variance predictors, bucketised embeddings, CWT pitch.

* :func:`check_durations`, :func:`durations_to_mel2ph`, :func:`length_regulate` -- Eq. (2) of the notes:
  ``H' = LR(H, d)`` repeats phoneme ``i``'s hidden state ``d_i`` times, so ``T = sum_i d_i``;
* :class:`VariancePredictor` -- 2 x [Conv1D(k3) -> ReLU -> LN -> Dropout] -> Linear (Sec. 2.3 of the paper);
* :func:`log_bins`, :func:`linear_bins` -- the boundaries that quantise pitch and energy into bins;
* :func:`interpolate_unvoiced`, :func:`cwt_decompose`, :func:`cwt_reconstruct` -- the pitch spectrogram of the
  paper's final version (Sec. 2.3 and Appendix D): log-F0 with unvoiced frames interpolated, z-normalised per
  utterance, decomposed by a Mexican-hat continuous wavelet transform into 10 scales, and the approximate
  inverse ``lf0 ~ znorm(sum_k W_k (k + 3.5)^-2.5)`` used by NATSpeech's ``fs2_orig``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reprobook._validate import check_fits_in_memory

NUM_SCALES = 10
CWT_DT = 0.005
"""pycwt's time step in NATSpeech (``dt = 0.005``, ``s0 = 2 dt``, ``dj = 1``, ``J = 9``): scales ``0.01 * 2^k`` s."""


# --------------------------------------------------------------------------------------------------------------
# Length regulator
# --------------------------------------------------------------------------------------------------------------


def check_durations(durations: torch.Tensor, num_phonemes: int | None = None) -> torch.Tensor:
    """Validate ``durations (B, N)`` (or ``(N,)``): finite, ``>= 0``, whole numbers; return them as int64."""
    if not isinstance(durations, torch.Tensor):
        raise TypeError(f"durations must be a tensor, got {type(durations).__name__}")
    if durations.is_floating_point():
        if not bool(torch.isfinite(durations).all()):
            raise ValueError("durations contain NaN or infinite values; expected whole numbers of frames >= 0")
        if not bool((durations == durations.round()).all()):
            raise ValueError("durations must be whole numbers of frames; round them first")
    if bool((durations < 0).any()):
        raise ValueError(f"durations must be >= 0, got a minimum of {durations.min().item()}")
    if num_phonemes is not None and durations.shape[-1] != num_phonemes:
        raise ValueError(
            f"durations has {durations.shape[-1]} entries per utterance but there are {num_phonemes} phonemes; "
            "the lengths must match"
        )
    return durations.long()


def durations_to_mel2ph(durations: torch.Tensor, max_frames: int | None = None) -> torch.Tensor:
    """``durations (B, N)`` -> ``mel2ph (B, T)``: the 1-based phoneme index of each frame, 0 at padding.

    ``T = max_frames`` or the longest ``sum_i d_i``; frames beyond an utterance's total are padding
    (an utterance longer than ``max_frames`` is cut). NATSpeech's representation of the alignment.
    """
    durations = check_durations(durations)
    if durations.ndim != 2:
        raise ValueError(f"durations must be (B, N), got shape {tuple(durations.shape)}")
    totals = durations.sum(1)
    width = int(totals.max()) if max_frames is None and durations.numel() else int(max_frames or 0)
    check_fits_in_memory("durations", f"summing to {width} frames", 3 * 8 * durations.shape[0] * width)
    ends = durations.cumsum(1)  # frame t belongs to the first phoneme whose end exceeds t
    frames = torch.arange(width, device=durations.device).expand(durations.shape[0], width).contiguous()
    index = torch.searchsorted(ends, frames, right=True) + 1
    return torch.where(frames < totals[:, None], index, 0)


def length_regulate(
    h: torch.Tensor, durations: torch.Tensor, max_frames: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``H' = LR(H, d)``: ``h (B, N, d)``, ``durations (B, N)`` -> ``(h' (B, T, d), frame lengths (B,))``.

    Row ``i`` of ``h[b]`` is repeated ``durations[b, i]`` times (zero durations drop the phoneme); padded
    frames are zero. One ``gather``, no Python loop over the batch (ming024's loop is O(B N) launches).
    """
    if h.ndim != 3:
        raise ValueError(f"h must be (B, N, d), got shape {tuple(h.shape)}")
    durations = check_durations(durations, h.shape[1])
    if durations.shape[0] != h.shape[0]:
        raise ValueError(f"h has batch {h.shape[0]} but durations has batch {durations.shape[0]}")
    mel2ph = durations_to_mel2ph(durations, max_frames)
    return regulate_with_mel2ph(h, mel2ph), (mel2ph > 0).sum(1)


def regulate_with_mel2ph(h: torch.Tensor, mel2ph: torch.Tensor) -> torch.Tensor:
    """Gather rows of ``h (B, N, d)`` by ``mel2ph (B, T)`` (1-based, 0 = padding -> zero row)."""
    padded = F.pad(h, (0, 0, 1, 0))  # row 0 of ``padded`` is the zero row for padding frames
    return torch.gather(padded, 1, mel2ph[..., None].expand(-1, -1, h.shape[-1]))


# --------------------------------------------------------------------------------------------------------------
# Predictors and embeddings
# --------------------------------------------------------------------------------------------------------------


class VariancePredictor(nn.Module):
    """Duration, pitch or energy predictor: ``(B, L, d) -> (B, L, out_dim)`` (0 at padding)."""

    def __init__(self, d_model: int, filter_size: int, out_dim: int = 1, kernel_size: int = 3, dropout: float = 0.5):
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(d_model, filter_size, kernel_size, padding=kernel_size // 2),
                nn.Conv1d(filter_size, filter_size, kernel_size, padding=kernel_size // 2),
            ]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(filter_size), nn.LayerNorm(filter_size)])
        self.out = nn.Linear(filter_size, out_dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        keep = 1.0 if padding is None else (~padding)[..., None].to(x.dtype)
        for conv, norm in zip(self.convs, self.norms):  # zero the padding so it never reaches a real position
            x = F.dropout(norm(F.relu(conv((x * keep).transpose(1, 2))).transpose(1, 2)), self.dropout, self.training)
        out: torch.Tensor = self.out(x)
        return out if padding is None else out.masked_fill(padding[..., None], 0.0)


def log_bins(low: float, high: float, num_bins: int = 256) -> torch.Tensor:
    """``num_bins - 1`` log-spaced boundaries ``exp(linspace(log low, log high))`` (pitch in Hz, v1)."""
    return torch.exp(torch.linspace(math.log(low), math.log(high), num_bins - 1))


def linear_bins(low: float, high: float, num_bins: int = 256) -> torch.Tensor:
    """``num_bins - 1`` uniformly spaced boundaries (normalised energy)."""
    return torch.linspace(low, high, num_bins - 1)


# --------------------------------------------------------------------------------------------------------------
# Pitch spectrogram (CWT)
# --------------------------------------------------------------------------------------------------------------


def interpolate_unvoiced(f0: torch.Tensor) -> torch.Tensor:
    """Fill unvoiced frames (``f0 == 0``) of ``(T,)`` by linear interpolation; the ends hold the nearest value.

    An utterance without any voiced frame gets a constant 100 Hz."""
    voiced = torch.nonzero(f0 > 0).flatten()
    if voiced.numel() == 0:
        return torch.full_like(f0, 100.0)
    t = torch.arange(f0.numel(), dtype=torch.float64)
    filled = torch.from_numpy(np.interp(t.numpy(), voiced.double().numpy(), f0[voiced].double().numpy()))
    return filled.to(f0.dtype)


def _mexican_hat_ft(omega: torch.Tensor) -> torch.Tensor:
    """Fourier transform of the Mexican hat (DOG, m = 2) as in pycwt: ``w^2 exp(-w^2 / 2) / sqrt(Gamma(2.5))``."""
    return omega**2 * torch.exp(-(omega**2) / 2) / math.sqrt(math.gamma(2.5))


def cwt_scales(num_scales: int = NUM_SCALES, dt: float = CWT_DT) -> torch.Tensor:
    """``s_k = 2 dt * 2^k``, ``k = 0 .. num_scales - 1`` (seconds)."""
    return 2 * dt * 2.0 ** torch.arange(num_scales, dtype=torch.float64)


def cwt_decompose(lf0: torch.Tensor, num_scales: int = NUM_SCALES, dt: float = CWT_DT) -> torch.Tensor:
    """Pitch spectrogram ``W (T, num_scales)`` of a z-normalised log-F0 contour ``(T,)`` (real part of the CWT).

    Computed as pycwt does, in the Fourier domain over a zero-padded power-of-two length:
    ``W_k = IFFT(X(w) sqrt(2 pi s_k / dt) psi^(s_k w))``.
    """
    if lf0.ndim != 1 or lf0.numel() == 0:
        raise ValueError(f"lf0 must be a non-empty 1-D contour, got shape {tuple(lf0.shape)}")
    n0 = lf0.numel()
    n = 1 << max(1, (n0 - 1).bit_length())
    x = torch.zeros(n, dtype=torch.float64)
    x[:n0] = lf0.double()
    omega = 2 * math.pi * torch.fft.fftfreq(n, d=dt, dtype=torch.float64)
    scales = cwt_scales(num_scales, dt)[:, None]
    kernel = torch.sqrt(2 * math.pi * scales / dt) * _mexican_hat_ft(scales * omega)
    w = torch.fft.ifft(torch.fft.fft(x)[None, :] * kernel, dim=-1).real[:, :n0]
    return w.t().to(lf0.dtype if lf0.is_floating_point() else torch.float32)


def cwt_reconstruct(w: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Approximate inverse ``znorm(sum_k W_k (k + 3.5)^-2.5)``: ``(..., T, K) -> (..., T)``.

    The z-normalisation runs over the frames where ``mask (..., T)`` is True (all frames by default);
    other frames come out 0.
    """
    k = torch.arange(w.shape[-1], device=w.device, dtype=w.dtype)
    summed = (w * (k + 3.5) ** -2.5).sum(-1)
    keep = torch.ones_like(summed) if mask is None else mask.to(summed.dtype)
    count = keep.sum(-1, keepdim=True).clamp(min=1.0)
    mean = (summed * keep).sum(-1, keepdim=True) / count
    var = ((summed - mean) ** 2 * keep).sum(-1, keepdim=True) / (count - 1).clamp(min=1.0)
    return (summed - mean) / var.sqrt().clamp(min=1e-5) * keep


def pitch_targets(f0: torch.Tensor) -> tuple[torch.Tensor, float, float, torch.Tensor]:
    """From frame F0 in Hz ``(T,)``: ``(log-F0 interpolated and z-normalised (T,), mean, std, CWT (T, 10))``."""
    lf0 = torch.log(interpolate_unvoiced(f0).clamp(min=1.0))
    mean, std = float(lf0.mean()), float(lf0.std().clamp(min=1e-3)) if lf0.numel() > 1 else 1.0
    z = (lf0 - mean) / std
    return z, mean, std, cwt_decompose(z)
