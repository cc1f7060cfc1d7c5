"""Hearing mel spectrograms: Griffin-Lim through ``torchaudio`` on the corpus's frame grid, for every speech chapter.

The paper uses a Parallel WaveGAN vocoder; a neural vocoder is a training run of its own, so the book inverts
mels with Griffin-Lim (32 iterations): the log-mel is exponentiated, mapped back to a linear-frequency magnitude by
least squares against the Slaney mel filters (:class:`torchaudio.transforms.InverseMelScale`), and a phase is
estimated iteratively. It sounds buzzy, but identically so for every system, so comparisons stay fair.
"""

from __future__ import annotations

import functools

import torch
import torchaudio

from reprobook.data.speech.espeak import SAMPLE_RATE
from reprobook.data.speech.features import F_MAX, F_MIN, HOP_LENGTH, N_FFT, N_MELS, WIN_LENGTH


@functools.lru_cache(maxsize=1)
def _transforms() -> tuple[torchaudio.transforms.InverseMelScale, torchaudio.transforms.GriffinLim]:
    inverse_mel = torchaudio.transforms.InverseMelScale(
        n_stft=N_FFT // 2 + 1,
        n_mels=N_MELS,
        sample_rate=SAMPLE_RATE,
        f_min=F_MIN,
        f_max=F_MAX,
        norm="slaney",
        mel_scale="slaney",
    )
    griffin_lim = torchaudio.transforms.GriffinLim(
        n_fft=N_FFT,
        n_iter=32,
        win_length=WIN_LENGTH,
        hop_length=HOP_LENGTH,
        power=1.0,
        rand_init=False,
    )
    return inverse_mel, griffin_lim


def griffin_lim(mel: torch.Tensor) -> torch.Tensor:
    """Log-mel ``(T, 80)`` (the models' layout) -> waveform ``(L,)`` at 22.05 kHz, ``L = (T - 1) * 256``."""
    if mel.ndim != 2 or mel.shape[1] != N_MELS or mel.shape[0] < 2:
        raise ValueError(f"mel must be (T, {N_MELS}) with T >= 2 frames, got shape {tuple(mel.shape)}")
    inverse_mel, gl = _transforms()
    with torch.no_grad():
        magnitude = inverse_mel(torch.exp(mel.detach().float().cpu()).t()).clamp(min=0.0)
        return gl(magnitude)
