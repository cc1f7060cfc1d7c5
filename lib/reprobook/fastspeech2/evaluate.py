"""Measuring a TTS system against the held-out recordings, as in the paper's Tables 2-4.

:func:`evaluate` has a system speak every utterance of a split (:func:`synthesize_items`) and scores it
(:class:`FastSpeech2Scores`, one row of a side-by-side table) with

* :func:`mel_cepstral_distortion` -- MCD in dB after DTW alignment: cepstra ``c_1 .. c_13`` are the cosine transform
  of the log-mel (:func:`cepstra`, an approximation of SPTK's mel-cepstra), ``MCD = (10 / ln 10) sqrt(2 sum_k
  (c_k - c^_k)^2)`` averaged over the aligned frames;
* :func:`pitch_moments` -- standard deviation, skewness and kurtosis of the voiced F0 (Table 3), and
  :func:`pitch_dtw_distance` -- the mean |F0 - F0^| in Hz along the DTW path between the two contours;
* :func:`energy_mae` -- mean |e - e^| along the mel DTW path (Table 4);
* :func:`duration_mae` -- mean |d - d^| in frames per phoneme;
* :func:`real_time_factor` -- seconds of compute per second of audio.

:func:`validation_mel_l1` is the validation curve of every training run.

Pitch and energy are measured on audio, the way the paper does: every system's mel goes through the same
Griffin-Lim (:func:`~reprobook.data.speech.vocoder.griffin_lim`), then the corpus's own pitch and energy extractors.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from reprobook._validate import check_choice, check_int, describe
from reprobook.data.speech import HOP_LENGTH, SAMPLE_RATE, frame_energy, frame_pitch, log_mel
from reprobook.data.speech.align import cepstra, dtw_path
from reprobook.data.speech.features import N_MELS
from reprobook.data.speech.vocoder import griffin_lim
from reprobook.fastspeech2.baselines import TransformerTTS
from reprobook.fastspeech2.data import TTSData, TTSItem, collate
from reprobook.fastspeech2.model import FastSpeech2, FastSpeech2s
from reprobook.fastspeech2.variance import interpolate_unvoiced
from reprobook.nn.utils import eval_mode
from reprobook.train import Scores

SPLITS = ("train", "valid", "test")
RECORDINGS = "recordings through Griffin-Lim"
"""The label of ``evaluate(None, data)``: the recordings' own mels through the same vocoder (its ceiling)."""


def mel_cepstral_distortion(mel: torch.Tensor, reference: torch.Tensor) -> tuple[float, list[tuple[int, int]]]:
    """MCD (dB) between log-mels ``(T1, 80)`` and ``(T2, 80)`` after DTW, and the path (generated, reference)."""
    for name, value in (("mel", mel), ("reference", reference)):
        if not isinstance(value, torch.Tensor) or value.ndim != 2 or value.shape[-1] != N_MELS or not len(value):
            raise ValueError(
                f"{name} must be a non-empty (T, {N_MELS}) log-mel, got {describe(value)} (a (n_mels, T) mel is "
                "transposed: pass mel.T)"
            )
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


@torch.no_grad()
def validation_mel_l1(model: FastSpeech2 | TransformerTTS, items: Sequence[TTSItem], batch_size: int = 32) -> float:
    """Mel L1 against the recordings at ground-truth durations, pitch and energy predicted (FastSpeech 2 and the
    student) or teacher-forced mel L1 (the autoregressive teacher), in eval mode (the model's mode is given back)."""
    check_int("batch_size", batch_size, 1)
    total, frames = 0.0, 0
    with eval_mode(model):
        for start in range(0, len(items), batch_size):
            batch = collate(items[start : start + batch_size])
            if isinstance(model, TransformerTTS):
                mel = model(batch)[0]
            else:
                mel = model.infer(batch.phonemes, batch.src_lengths, durations=batch.durations)["mel"]
            keep = torch.arange(batch.mel.shape[1])[None, :] < batch.mel_lengths[:, None]
            total += float(((mel - batch.mel).abs().mean(-1) * keep).sum())
            frames += int(keep.sum())
    return total / max(frames, 1)


@dataclass
class Synthesis:
    """What a system produced for a list of utterances: log-mels ``(T, 80)``, waveforms ``(L,)``, the phoneme
    durations it used (None for the autoregressive teacher, which has none) and the seconds spent."""

    mels: list[torch.Tensor]
    waveforms: list[torch.Tensor]
    durations: list[torch.Tensor | None]
    seconds: float


@torch.no_grad()
def synthesize_items(system: torch.nn.Module | None, items: Sequence[TTSItem], **controls: float) -> Synthesis:
    """Run ``system`` on every item's phonemes, one utterance at a time, free-running (predicted durations,
    pitch and energy; ``controls`` as :meth:`FastSpeech2.infer`), in eval mode (its mode is given back).

    ``system`` is a :class:`FastSpeech2` (FastSpeech 2, an ablation or the FastSpeech student), a
    :class:`FastSpeech2s` (waveform out; its mel is re-analysed from the audio), a :class:`TransformerTTS`
    (autoregressive, stopped at the recording's frame count: it has no stop token) or None for the recordings'
    own mels (the vocoder's ceiling). Mels are heard through :func:`griffin_lim`."""
    if controls and not isinstance(system, (FastSpeech2, FastSpeech2s)):
        raise ValueError(f"controls {sorted(controls)} apply to FastSpeech 2 and 2s only, not {type(system).__name__}")
    if system is not None and not isinstance(system, (FastSpeech2, FastSpeech2s, TransformerTTS)):
        raise TypeError(
            f"system must be FastSpeech2, FastSpeech2s, TransformerTTS or None, got {type(system).__name__}"
        )
    mels, waves, durations = [], [], []
    start = time.perf_counter()
    with eval_mode(*(() if system is None else (system,))):
        for item in items:
            duration: torch.Tensor | None = None
            if system is None:
                mel = item.mel
            elif isinstance(system, FastSpeech2s):
                out = system.infer(item.phonemes, **controls)
                wave, duration = out["waveform"][0], out["durations"][0]
                mel = log_mel(wave).t()
            elif isinstance(system, FastSpeech2):
                out = system.infer(item.phonemes, **controls)  # type: ignore[arg-type]
                mel, duration = out["mel"][0], out["durations"][0]
            else:
                mel = system.generate(
                    item.phonemes[None], torch.tensor([item.phonemes.numel()]), torch.tensor([item.mel.shape[0]])
                )[0][0]
            if not isinstance(system, FastSpeech2s):
                wave = griffin_lim(mel)
            mels.append(mel)
            waves.append(wave)
            durations.append(duration)
    return Synthesis(mels, waves, durations, time.perf_counter() - start)


@dataclass(kw_only=True)
class FastSpeech2Scores(Scores):
    """One system's averages over a split's utterances (``label`` names it in tables).

    ``pitch_*`` and ``voiced`` (the fraction of frames where the pitch tracker finds a pitch) are measured on the
    generated audio, ``gt_pitch_*`` and ``gt_voiced`` on the recordings. Each moment stands on its own, as in the
    paper's Table 3 (a sum of them would be ruled by the kurtosis, the noisiest). ``duration_mae`` is NaN for a
    system without durations (the teacher, the recordings). ``synthesis`` keeps the audio and the mels (left out of
    the repr and of comparisons)."""

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
    synthesis: Synthesis = field(repr=False, compare=False)

    def row(self) -> dict[str, Any]:
        """One table row: method, MCD, pitch std/skewness/kurtosis and DTW distance, voiced, energy and duration MAE."""
        return {
            "method": self.label,
            "MCD (dB)": self.mcd,
            "pitch std": self.pitch_std,
            "skewness": self.pitch_skew,
            "kurtosis": self.pitch_kurtosis,
            "pitch DTW (Hz)": self.pitch_dtw,
            "voiced": self.voiced,
            "energy MAE": self.energy_mae,
            "duration MAE": self.duration_mae,
        }


def _metrics(synthesis: Synthesis, items: Sequence[TTSItem]) -> dict[str, float]:
    """Every metric of :class:`FastSpeech2Scores`, averaged over ``items`` (NaN entries skipped)."""
    rows, gt_rows = [], []
    for mel, wave, duration, item in zip(synthesis.mels, synthesis.waveforms, synthesis.durations, items):
        mcd, path = mel_cepstral_distortion(mel, item.mel)
        f0 = frame_pitch(wave)
        dur = math.nan if duration is None else duration_mae(duration, item.durations)
        rows.append(
            [
                mcd,
                *pitch_moments(f0),
                pitch_dtw_distance(f0, item.f0_raw),
                energy_mae(frame_energy(wave), item.energy_raw, path),
                dur,
                float((f0 > 0).float().mean()),
            ]
        )
        gt_rows.append([*pitch_moments(item.f0_raw), float((item.f0_raw > 0).float().mean())])
    with warnings.catch_warnings():  # an all-NaN column (no durations) averages to NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        m, g = np.nanmean(np.array(rows, dtype=float), 0), np.nanmean(np.array(gt_rows, dtype=float), 0)
    names = ("mcd", "pitch_std", "pitch_skew", "pitch_kurtosis", "pitch_dtw", "energy_mae", "duration_mae", "voiced")
    gt_names = ("gt_pitch_std", "gt_pitch_skew", "gt_pitch_kurtosis", "gt_voiced")
    return {**{n: float(x) for n, x in zip(names, m)}, **{n: float(x) for n, x in zip(gt_names, g)}}


def _label(system: torch.nn.Module | None) -> str:
    if system is None:
        return RECORDINGS
    if isinstance(system, FastSpeech2s):
        return str(system.acoustic.config.label)
    if isinstance(system, FastSpeech2):
        return str(system.config.label)
    return "autoregressive teacher"


def evaluate(
    model: torch.nn.Module | None, data: TTSData, split: str = "test", *, label: str | None = None
) -> FastSpeech2Scores:
    """Have ``model`` speak every utterance of ``data``'s ``split`` (:func:`synthesize_items`, in eval mode; the
    model's mode is given back) and score it against the recordings.

    ``model``: a :class:`FastSpeech2` (FastSpeech 2, an ablation, the FastSpeech student), a :class:`FastSpeech2s`,
    the :class:`TransformerTTS` teacher, or None: the recordings' own mels through the same Griffin-Lim, the
    ceiling of every audio-side measure. ``label`` names the row (default: the config's
    :attr:`~reprobook.fastspeech2.FastSpeech2Config.label`, ``"autoregressive teacher"``, or
    ``"recordings through Griffin-Lim"``). The audio and mels stay in the scores' ``synthesis``.
    """
    check_choice("split", split, SPLITS)
    if not isinstance(data, TTSData):
        raise TypeError(f"data must be the TTSData of load_data(config), got {type(data).__name__}")
    items = getattr(data, split)
    synthesis = synthesize_items(model, items)
    return FastSpeech2Scores(label=label or _label(model), **_metrics(synthesis, items), synthesis=synthesis)
