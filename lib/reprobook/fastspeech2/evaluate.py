"""Measuring a TTS system against the held-out recordings, as in the paper's Tables 2-4.

* :func:`mel_cepstral_distortion` -- MCD in dB after DTW alignment: cepstra ``c_1 .. c_13`` are the cosine transform
  of the log-mel (:func:`cepstra`, an approximation of SPTK's mel-cepstra), ``MCD = (10 / ln 10) sqrt(2 sum_k
  (c_k - c^_k)^2)`` averaged over the aligned frames;
* :func:`pitch_moments` -- standard deviation, skewness and kurtosis of the voiced F0 (Table 3), and
  :func:`pitch_dtw_distance` -- the mean |F0 - F0^| in Hz along the DTW path between the two contours;
* :func:`energy_mae` -- mean |e - e^| along the mel DTW path (Table 4);
* :func:`duration_mae` -- mean |d - d^| in frames per phoneme;
* :func:`real_time_factor` -- seconds of compute per second of audio.

Pitch and energy are measured on audio, the way the paper does: every system's mel goes through the same
Griffin-Lim (:func:`~reprobook.fastspeech2.audio.griffin_lim`), then the corpus's own pitch and energy extractors.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from reprobook.data.speech import HOP_LENGTH, SAMPLE_RATE, frame_energy, frame_pitch, log_mel
from reprobook.data.speech.align import cepstra, dtw_path
from reprobook.fastspeech2.audio import griffin_lim
from reprobook.fastspeech2.baseline import TransformerTTS
from reprobook.fastspeech2.data import TTSItem
from reprobook.fastspeech2.model import FastSpeech2
from reprobook.fastspeech2.train import FastSpeech2s
from reprobook.fastspeech2.variance import interpolate_unvoiced


def mel_cepstral_distortion(mel: torch.Tensor, reference: torch.Tensor) -> tuple[float, list[tuple[int, int]]]:
    """MCD (dB) between log-mels ``(T1, 80)`` and ``(T2, 80)`` after DTW, and the path (generated, reference)."""
    c, r = cepstra(mel), cepstra(reference)
    path = dtw_path(c, r)
    diff = np.stack([c[i] - r[j] for i, j in path])
    return float(np.mean(10 / math.log(10) * np.sqrt(2 * (diff**2).sum(-1)))), path


def pitch_moments(f0: torch.Tensor) -> tuple[float, float, float]:
    """``(std, skewness, excess kurtosis)`` of the voiced frames (F0 > 0) in Hz; NaN if fewer than 3 voiced."""
    v = f0[f0 > 0].double()
    if v.numel() < 3:
        return math.nan, math.nan, math.nan
    mean, std = v.mean(), v.std(unbiased=False)
    z = (v - mean) / std.clamp(min=1e-9)
    return float(std), float((z**3).mean()), float((z**4).mean() - 3)


def pitch_dtw_distance(f0: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean |F0 - F0_ref| (Hz) along the DTW path of the two contours, unvoiced frames interpolated."""
    a, b = interpolate_unvoiced(f0).double().numpy(), interpolate_unvoiced(reference).double().numpy()
    path = dtw_path(a[:, None], b[:, None])
    return float(np.mean([abs(a[i] - b[j]) for i, j in path]))


def energy_mae(energy: torch.Tensor, reference: torch.Tensor, path: Sequence[tuple[int, int]]) -> float:
    """Mean |e - e_ref| along ``path`` (pairs of frame indices, e.g. the MCD path)."""
    n, m = energy.numel(), reference.numel()
    return float(np.mean([abs(float(energy[min(i, n - 1)]) - float(reference[min(j, m - 1)])) for i, j in path]))


def duration_mae(durations: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean absolute difference in frames per phoneme."""
    if durations.shape != reference.shape:
        raise ValueError(f"durations {tuple(durations.shape)} and reference {tuple(reference.shape)} must match")
    return float((durations.double() - reference.double()).abs().mean())


def real_time_factor(synthesize: Callable[[], torch.Tensor], repeats: int = 1) -> float:
    """Seconds of compute per second of audio produced: ``synthesize()`` returns a waveform ``(L,)`` or a mel
    ``(T, 80)`` (counted as ``T * 256`` samples). The best of ``repeats`` runs."""
    best = math.inf
    out = torch.zeros(1)
    for _ in range(repeats):
        start = time.perf_counter()
        out = synthesize()
        best = min(best, time.perf_counter() - start)
    samples = out.numel() if out.ndim == 1 else out.shape[0] * HOP_LENGTH
    return best / (samples / SAMPLE_RATE)


@dataclass
class Scores:
    """Averages over the test utterances (``pitch_*`` of the generated audio; ``gt_pitch_*`` of the recordings;
    ``voiced``: the fraction of frames where the pitch tracker finds a pitch, in the generated audio)."""

    mcd: float
    pitch_std: float
    pitch_skew: float
    pitch_kurtosis: float
    pitch_dtw: float
    energy_mae: float
    duration_mae: float
    voiced: float
    gt_pitch_std: float
    gt_pitch_skew: float
    gt_pitch_kurtosis: float
    gt_voiced: float

    @property
    def moment_distance(self) -> float:
        """``|std - std_gt| / std_gt + |skew - skew_gt| + |kurt - kurt_gt|``: one number for Table 3's moments."""
        return (
            abs(self.pitch_std - self.gt_pitch_std) / self.gt_pitch_std
            + abs(self.pitch_skew - self.gt_pitch_skew)
            + abs(self.pitch_kurtosis - self.gt_pitch_kurtosis)
        )


def score(
    mels: Sequence[torch.Tensor],
    waveforms: Sequence[torch.Tensor],
    references: Sequence[torch.Tensor],
    reference_f0: Sequence[torch.Tensor],
    reference_energy: Sequence[torch.Tensor],
    durations: Sequence[torch.Tensor | None] | None = None,
    reference_durations: Sequence[torch.Tensor] | None = None,
) -> Scores:
    """All metrics over a test set: generated mels ``(T, 80)`` and their audio, against the reference mels,
    the recordings' F0 and energy and (optionally) phoneme durations."""
    if not mels or not (len(mels) == len(waveforms) == len(references) == len(reference_f0) == len(reference_energy)):
        raise ValueError(
            "mels, waveforms, references, reference_f0 and reference_energy must be non-empty and equally long"
        )
    rows, gt_rows = [], []
    for k, (mel, wave, ref, f0_ref, e_ref) in enumerate(
        zip(mels, waveforms, references, reference_f0, reference_energy)
    ):
        mcd, path = mel_cepstral_distortion(mel, ref)
        f0 = frame_pitch(wave)
        moments, gt = pitch_moments(f0), pitch_moments(f0_ref)
        dur = math.nan
        if durations is not None and reference_durations is not None and durations[k] is not None:
            dur = duration_mae(durations[k], reference_durations[k])  # type: ignore[arg-type]
        rows.append(
            [
                mcd,
                *moments,
                pitch_dtw_distance(f0, f0_ref),
                energy_mae(frame_energy(wave), e_ref, path),
                dur,
                float((f0 > 0).float().mean()),
            ]
        )
        gt_rows.append([*gt, float((f0_ref > 0).float().mean())])
    with warnings.catch_warnings():  # an all-NaN column (no durations) averages to NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        m, g = np.nanmean(np.array(rows, dtype=float), 0), np.nanmean(np.array(gt_rows, dtype=float), 0)
    return Scores(*(float(x) for x in m), *(float(x) for x in g))


@dataclass
class Synthesis:
    """What a system produced for a list of utterances: log-mels ``(T, 80)``, waveforms ``(L,)``, the phoneme
    durations it used (None for the autoregressive teacher, which has none) and the seconds spent."""

    mels: list[torch.Tensor]
    waveforms: list[torch.Tensor]
    durations: list[torch.Tensor | None]
    seconds: float


def synthesize_items(system: torch.nn.Module | None, items: Sequence[TTSItem], **controls: float) -> Synthesis:
    """Run ``system`` on every item's phonemes, one utterance at a time, free-running (predicted durations,
    pitch and energy; ``controls`` as :meth:`FastSpeech2.infer`).

    ``system`` is a :class:`FastSpeech2` (FastSpeech 2, an ablation or the FastSpeech student), a
    :class:`FastSpeech2s` (waveform out; its mel is re-analysed from the audio), a :class:`TransformerTTS`
    (autoregressive, stopped at the recording's frame count: it has no stop token) or None for the recordings'
    own mels (the vocoder's ceiling). Mels are heard through :func:`griffin_lim`."""
    if controls and not isinstance(system, (FastSpeech2, FastSpeech2s)):
        raise ValueError(f"controls {sorted(controls)} apply to FastSpeech 2 and 2s only, not {type(system).__name__}")
    mels, waves, durations = [], [], []
    start = time.perf_counter()
    for item in items:
        duration: torch.Tensor | None = None
        if system is None:
            mel = item.mel
        elif isinstance(system, FastSpeech2s):
            out = system.infer(item.phonemes, **controls)
            wave, duration = out["waveform"][0], out["durations"][0]
            mel = log_mel(wave).t()
        elif isinstance(system, FastSpeech2):
            system.eval()
            out = system.infer(item.phonemes, **controls)  # type: ignore[arg-type]
            mel, duration = out["mel"][0], out["durations"][0]
        elif isinstance(system, TransformerTTS):
            mel = system.generate(
                item.phonemes[None], torch.tensor([item.phonemes.numel()]), torch.tensor([item.mel.shape[0]])
            )[0][0]
        else:
            raise TypeError(
                f"system must be FastSpeech2, FastSpeech2s, TransformerTTS or None, got {type(system).__name__}"
            )
        if not isinstance(system, FastSpeech2s):
            wave = griffin_lim(mel)
        mels.append(mel)
        waves.append(wave)
        durations.append(duration)
    return Synthesis(mels, waves, durations, time.perf_counter() - start)


def evaluate(system: torch.nn.Module | None, items: Sequence[TTSItem], **controls: float) -> tuple[Scores, Synthesis]:
    """:func:`synthesize_items`, then :func:`score` against the items' recordings."""
    out = synthesize_items(system, items, **controls)
    scores = score(
        out.mels,
        out.waveforms,
        [i.mel for i in items],
        [i.f0_raw for i in items],
        [i.energy_raw for i in items],
        out.durations,
        [i.durations for i in items],
    )
    return scores, out
