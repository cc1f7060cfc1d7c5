"""DTW alignment: the fast dtw_path against a plain loop, and align_durations against espeak's exact durations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
import torch

from reprobook.data.speech import (
    N_MELS,
    PAUSE,
    Utterance,
    align_durations,
    dtw_path,
    durations_in_frames,
    log_mel,
    synthesize,
)
from reprobook.fastspeech2.evaluate import dtw_path as metrics_dtw_path

SENTENCE = "The train leaves from platform nine at half past seven."


def _reference_dtw(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """The textbook recursion, one cell at a time; backtracking prefers diagonal, then (i-1, j), then (i, j-1)."""
    a2, b2 = a.reshape(len(a), -1), b.reshape(len(b), -1)
    cost = np.sqrt(((a2[:, None, :] - b2[None, :, :]) ** 2).sum(-1))
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    path, i, j = [], n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = int(np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]]))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    return path[::-1]


@pytest.mark.parametrize("integer_costs", [False, True], ids=["random", "ties"])
def test_dtw_path_equals_the_plain_recursion(integer_costs: bool) -> None:
    rng = np.random.default_rng(0)
    for _ in range(150):
        n, m, k = rng.integers(1, 14, size=3)
        if integer_costs:  # few distinct values: many equal accumulated costs, so tie-breaking decides
            a, b = rng.integers(0, 2, (n, k)).astype(float), rng.integers(0, 2, (m, k)).astype(float)
        else:
            a, b = rng.normal(size=(n, k)), rng.normal(size=(m, k))
        assert dtw_path(a, b) == _reference_dtw(a, b), (n, m, k)
    assert metrics_dtw_path is dtw_path  # the metrics use the same function


def test_dtw_path_shapes_and_edge_cases() -> None:
    assert dtw_path(np.zeros((1, 3)), np.zeros((1, 3))) == [(0, 0)]
    assert dtw_path(np.zeros(4), np.zeros(1)) == [(i, 0) for i in range(4)]  # 1-D inputs are (T, 1)
    a = np.random.default_rng(1).normal(size=(40, 13))
    assert dtw_path(a, a) == [(i, i) for i in range(40)]
    path = dtw_path(a, a[::2])
    steps = np.diff(np.array(path), axis=0)
    assert path[0] == (0, 0) and path[-1] == (39, 19)
    assert {tuple(s) for s in steps} <= {(1, 0), (0, 1), (1, 1)}


def _boundary_errors(durations: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    return (durations.cumsum(0) - truth.cumsum(0)).abs()


def test_aligned_durations_match_espeak_at_another_rate_and_pitch() -> None:
    # Measured: MAE 0.60 frames per phoneme, mean boundary error 0.35, every boundary within 1 frame.
    # Stretching the reference durations uniformly instead gives a mean boundary error of 1.7 (worst 4).
    reference = synthesize(SENTENCE, rate=150)
    target = synthesize(SENTENCE, rate=210, pitch=80)
    assert target.phonemes == reference.phonemes
    mel = log_mel(target.waveform)
    truth = durations_in_frames(target, mel.shape[-1])
    durations = align_durations(reference, mel)
    assert durations.dtype == torch.int64 and durations.shape == (len(reference.phonemes),)
    assert int(durations.sum()) == mel.shape[-1] and bool((durations >= 0).all())
    assert (durations - truth).abs().double().mean() < 1.0
    errors = _boundary_errors(durations, truth)
    assert errors.double().mean() < 0.6 and int(errors.max()) <= 2


def _with_silence(utterance: Utterance, before: int, after: int) -> Utterance:
    """``utterance`` with zeros before and after, given to its first and last phoneme."""
    starts, ends = utterance.starts + before, utterance.ends + before
    starts[0], ends[-1] = 0, utterance.waveform.numel() + before + after
    waveform = torch.cat([torch.zeros(before), utterance.waveform, torch.zeros(after)])
    return replace(utterance, waveform=waveform, starts=starts, ends=ends)


def test_a_recordings_long_pauses_go_to_the_pause_phonemes() -> None:
    # Recordings start and end with far more silence than espeak does; without padding the reference with
    # silence, the first word absorbed the leading 0.4 s (37 frames for a 4-frame "th").
    reference = synthesize(SENTENCE, rate=150)
    target = _with_silence(synthesize(SENTENCE, rate=210, pitch=80), before=8820, after=4410)
    assert reference.phonemes[0] == reference.phonemes[-1] == PAUSE
    mel = log_mel(target.waveform)
    truth = durations_in_frames(target, mel.shape[-1])
    durations = align_durations(reference, mel)
    assert int(durations.sum()) == mel.shape[-1]
    assert abs(int(durations[0]) - int(truth[0])) <= 2 and abs(int(durations[-1]) - int(truth[-1])) <= 3
    errors = _boundary_errors(durations, truth)
    assert errors.double().mean() < 0.7 and int(errors.max()) <= 3


def test_identical_audio_gives_the_references_own_durations() -> None:
    for text in (SENTENCE, "I counted twenty three birds on the old wooden fence."):
        reference = synthesize(text)
        mel = log_mel(reference.waveform)
        assert torch.equal(align_durations(reference, mel), durations_in_frames(reference, mel.shape[-1]))


def test_durations_sum_to_any_frame_count() -> None:
    reference = synthesize("hello world")
    for num_frames in (1, 3, 40, 200):
        mel = log_mel(synthesize("hello world", rate=300).waveform)[:, :num_frames]
        durations = align_durations(reference, mel)
        assert int(durations.sum()) == mel.shape[-1] and bool((durations >= 0).all())
    silence = torch.full((N_MELS, 25), -11.5)
    assert int(align_durations(reference, silence).sum()) == 25


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda u: align_durations(u, torch.zeros(N_MELS)), ValueError, "target_mel"),
        (lambda u: align_durations(u, torch.zeros(40, 100)), ValueError, r"target_mel.*\(80, T\).*\(40, 100\)"),
        (lambda u: align_durations(u, torch.zeros(100, N_MELS)), ValueError, "target_mel"),  # (T, 80): transposed
        (lambda u: align_durations(u, torch.zeros(N_MELS, 0)), ValueError, "at least one frame"),
        (lambda u: align_durations(u, torch.full((N_MELS, 9), float("nan"))), ValueError, "finite"),
        (lambda u: align_durations(u, np.zeros((N_MELS, 9))), ValueError, "target_mel"),
        (lambda u: align_durations(u.waveform, torch.zeros(N_MELS, 9)), TypeError, "reference.*Utterance"),
    ],
)
def test_bad_inputs_raise_clear_errors(call: Callable[[Utterance], object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call(synthesize("hello world"))
