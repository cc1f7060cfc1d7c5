"""Phoneme durations for a recording without a trained aligner: DTW against espeak speaking the same text.

espeak-ng reports exactly when each of its phonemes starts (:func:`~reprobook.data.speech.espeak.synthesize`),
so its rendering of a sentence is a *reference* with known phoneme boundaries. A recording of the same sentence
(LJSpeech) says the same phonemes in the same order, with other timing and another voice. Dynamic time warping
(Sakoe & Chiba, 1978) of the two cepstral sequences finds the monotone frame-to-frame correspondence, and each
recording frame inherits the phoneme of the reference frame it is matched with: segmentation by aligning a
recording with synthetic speech of known segmentation (Malfrère & Dutoit, "High-quality speech synthesis
for phonetic speech segmentation", Eurospeech 1997).

* :func:`cepstra` -- cosine transform of a log-mel: low-order cepstra describe the spectral envelope (the
  phoneme) and discard the harmonics (the pitch);
* :func:`dtw_path` -- the optimal warping path, its accumulated cost computed one anti-diagonal at a time;
* :func:`align_durations` -- the reference's phoneme durations carried through the path onto the recording.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from reprobook.data.speech.espeak import Utterance
from reprobook.data.speech.features import HOP_LENGTH, N_MELS, durations_in_frames, log_mel

SILENCE_MARGIN = 8 * HOP_LENGTH
"""Samples of silence (93 ms) added before and after the espeak reference, for a recording's pauses to match."""


def cepstra(mel: torch.Tensor, num: int = 13) -> np.ndarray:
    """Cepstral coefficients ``c_1 .. c_num`` of a natural-log mel spectrum ``(T, n_mels)``: ``(T, num)``.

    The log spectrum sampled at ``n`` mel-warped frequencies ``w_i = pi (i + 1/2) / n`` is read as the cosine
    series ``log|X(w)| = c_0 + 2 sum_k c_k cos(k w)``, so ``c_k = (1/n) sum_i x_i cos(k w_i)``: the scale of
    SPTK's mel-cepstra, which the MCD formula assumes. An approximation: SPTK estimates mel-cepstra from the
    linear spectrum through a frequency warp; here the cosine transform of the 80 mel bands stands in.
    """
    n = mel.shape[-1]
    omega = math.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n
    basis = torch.cos(torch.arange(1, num + 1, dtype=torch.float64)[:, None] * omega[None, :]) / n
    return (mel.detach().double().cpu() @ basis.t()).numpy()


def dtw_path(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """Dynamic time warping of ``a (T1, k)`` and ``b (T2, k)`` with Euclidean frame costs; steps (1,0), (0,1),
    (1,1). Returns the optimal path as ``(i, j)`` pairs from ``(0, 0)`` to ``(T1 - 1, T2 - 1)``.

    The accumulated cost ``D(i, j) = cost(i, j) + min(D(i-1, j-1), D(i-1, j), D(i, j-1))`` depends only on
    the two previous anti-diagonals, so each anti-diagonal ``i + j = d`` is one vectorised step: ``T1 + T2``
    NumPy operations instead of ``T1 T2`` Python ones. ``D`` is stored skewed, ``S[d, i] = D(i, d - i)``, which
    makes every anti-diagonal a contiguous slice. Rounding is monotone, so ``min(x, y) + c`` is exactly
    ``min(x + c, y + c)``: the values, hence the path, are bit for bit those of the cell-by-cell loop.
    Backtracking prefers the diagonal step on ties, then ``(i-1, j)``, then ``(i, j-1)``.
    """
    a2, b2 = (a.reshape(len(a), -1), b.reshape(len(b), -1))
    cost = np.sqrt(((a2[:, None, :] - b2[None, :, :]) ** 2).sum(-1))
    n, m = cost.shape
    # S[d, i] = D(i, d - i) with the usual padding: D(0, 0) = 0 and D = inf on the rest of row and column 0.
    skewed = np.full((n + m + 1, n + 1), np.inf)
    skewed[0, 0] = 0.0
    rows, cols = np.indices((n, m))
    skewed_cost = np.full_like(skewed, np.inf)
    skewed_cost[rows + cols + 2, rows + 1] = cost
    best = np.empty(n + 1)
    for d in range(2, n + m + 1):
        lo, hi = max(1, d - m), min(n, d - 1)  # rows i of anti-diagonal d with 1 <= i <= n, 1 <= d - i <= m
        out = best[lo : hi + 1]
        np.minimum(skewed[d - 2, lo - 1 : hi], skewed[d - 1, lo - 1 : hi], out=out)  # diagonal, up
        np.minimum(out, skewed[d - 1, lo : hi + 1], out=out)  # left
        np.add(out, skewed_cost[d, lo : hi + 1], out=skewed[d, lo : hi + 1])
    path, i, j = [], n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        d = i + j
        diag, up, left = skewed[d - 2, i - 1], skewed[d - 1, i - 1], skewed[d - 1, i]
        if diag <= up and diag <= left:
            i, j = i - 1, j - 1
        elif up <= left:
            i -= 1
        else:
            j -= 1
    return path[::-1]


def _features(mel: torch.Tensor) -> np.ndarray:
    """Log-energy ``c_0`` (the mean log-mel) and :func:`cepstra` ``c_1 .. c_13``: ``(N_MELS, T)`` -> ``(T, 14)``."""
    return np.concatenate([mel.t().double().mean(-1, keepdim=True).numpy(), cepstra(mel.t())], axis=1)


def _standardise(features: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Cepstral mean and variance normalisation of ``features`` with the statistics of ``like`` (both ``(T, k)``).

    It removes what two voices differ in on every frame (loudness, spectral tilt, microphone), so that DTW
    compares what they share: the sequence of phonemes and pauses.
    """
    return (features - like.mean(0)) / (like.std(0) + 1e-8)


def _pad_with_silence(utterance: Utterance, samples: int) -> Utterance:
    """``utterance`` with ``samples`` zeros before and after, given to its first and last phoneme."""
    length = utterance.waveform.numel()
    silence = torch.zeros(samples, dtype=utterance.waveform.dtype)
    starts, ends = utterance.starts + samples, utterance.ends + samples
    starts[0], ends[-1] = 0, length + 2 * samples
    return replace(utterance, waveform=torch.cat([silence, utterance.waveform, silence]), starts=starts, ends=ends)


def align_durations(reference: Utterance, target_mel: torch.Tensor) -> torch.Tensor:
    """Frames per phoneme of ``reference`` in a recording of the same text: ``(N,)`` int64, summing to ``T``.

    ``reference`` is espeak speaking the recording's text (``N`` phonemes with exact boundaries);
    ``target_mel`` is the recording's log-mel ``(N_MELS, T)`` as :func:`~reprobook.data.speech.features.log_mel`
    returns it. espeak's own leading and trailing pauses last a few milliseconds, a recording's often much
    longer, so the reference is first padded with :data:`SILENCE_MARGIN` samples of silence at both ends (given
    to its first and last phoneme, normally :data:`~reprobook.data.speech.espeak.PAUSE`). Its durations
    (:func:`~reprobook.data.speech.features.durations_in_frames`) label each reference frame with a phoneme;
    :func:`dtw_path` on cepstra with ``c_0``, each side standardised by its own statistics (the reference by
    those of its unpadded audio), matches every target frame ``j`` with a run of reference frames, and ``j``
    takes the phoneme of the frame in that run closest to it. The path is monotone and visits every target
    frame, so the phoneme order is kept, each target frame belongs to exactly one phoneme and the durations
    sum to ``T`` exactly; a phoneme may get 0 frames. Identical audio gives back the reference's durations.
    """
    if not isinstance(reference, Utterance):
        raise TypeError(f"reference must be an Utterance from synthesize(), got {type(reference).__name__}")
    if not isinstance(target_mel, torch.Tensor) or target_mel.ndim != 2 or target_mel.shape[0] != N_MELS:
        shape = tuple(target_mel.shape) if isinstance(target_mel, torch.Tensor) else type(target_mel).__name__
        raise ValueError(f"target_mel must be a log-mel of shape ({N_MELS}, T), got {shape}")
    num_frames = target_mel.shape[1]
    if num_frames < 1 or not bool(torch.isfinite(target_mel).all()):
        raise ValueError(f"target_mel must have at least one frame and finite values, got shape {(N_MELS, num_frames)}")
    padded = _pad_with_silence(reference, SILENCE_MARGIN)
    reference_mel = log_mel(padded.waveform)
    reference_durations = durations_in_frames(padded, reference_mel.shape[-1])
    owner = torch.repeat_interleave(torch.arange(len(reference.phonemes)), reference_durations)  # phoneme per frame
    speech, target = _features(log_mel(reference.waveform)), _features(target_mel)  # voice statistics, no padding
    a, b = _standardise(_features(reference_mel), speech), _standardise(target, target)
    path = np.asarray(dtw_path(a, b))
    i, j = path[:, 0], path[:, 1]  # j is non-decreasing along the path and takes every value 0 .. T-1
    cost = np.linalg.norm(a[i] - b[j], axis=1)
    order = np.lexsort((cost, j))  # by target frame, then by cost; stable, so ties keep the earliest i
    best = i[order[np.searchsorted(j[order], np.arange(num_frames))]]  # each target frame's closest match
    return torch.bincount(owner[torch.from_numpy(best)], minlength=len(reference.phonemes))
