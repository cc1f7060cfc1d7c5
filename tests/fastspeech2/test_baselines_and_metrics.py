"""The FastSpeech baseline (teacher, duration extraction, distillation), FastSpeech 2s's pieces and the metrics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from reprobook.data.speech import HOP_LENGTH, SAMPLE_RATE
from reprobook.fastspeech2 import (
    FastSpeech2Config,
    TeacherConfig,
    TransformerTTS,
    collate,
    distill,
    extract_durations,
    focus_rate,
    load_data,
)
from reprobook.fastspeech2.baselines import guided_attention_weights
from reprobook.fastspeech2.data import TTSData
from reprobook.fastspeech2.evaluate import (
    cepstra,
    dtw_path,
    mel_cepstral_distortion,
    pitch_moments,
    real_time_factor,
)
from reprobook.fastspeech2.wave import (
    Discriminator,
    WaveConfig,
    WaveDecoder,
    multi_resolution_stft_loss,
    random_slices,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TTSData:
    config = FastSpeech2Config(num_utterances=12, num_valid=2, num_test=2)
    return load_data(config, cache_dir=str(tmp_path_factory.mktemp("speech")))


def _teacher(data: TTSData, **kwargs: Any) -> TransformerTTS:
    torch.manual_seed(0)
    return TransformerTTS(TeacherConfig(d_model=32, d_ff=64, **kwargs), len(data.vocab)).eval()


@pytest.mark.parametrize("reduction", [1, 2, 3])
def test_generation_is_consistent_with_teacher_forcing(data: TTSData, reduction: int) -> None:
    """Fed its own generated frames, the teacher-forced forward pass reproduces them: the cached
    step-by-step decoder computes the same function as the parallel one, whatever the frames per step
    (3 does not divide every length: the last step's extra frames are cut). Pre-net dropout off, so that
    both passes see the same pre-net."""
    teacher = _teacher(data, prenet_dropout=0.0, reduction=reduction)
    batch = collate(data.train[:2])
    mel, attention = teacher.generate(batch.phonemes, batch.src_lengths, batch.mel_lengths)
    assert mel.shape == batch.mel.shape and attention.shape[:3] == (2, 2 * 2, batch.mel.shape[1])
    batch.mel = mel
    with torch.no_grad():
        again, _ = teacher(batch)
    keep = torch.arange(mel.shape[1])[None, :] < batch.mel_lengths[:, None]
    torch.testing.assert_close(again[keep], mel[keep], atol=1e-4, rtol=1e-4)


def test_prenet_dropout_stays_on_at_inference(data: TTSData) -> None:
    """Tacotron 2's recipe: generation samples pre-net dropout masks, so only the seed makes it repeatable."""
    teacher = _teacher(data)
    batch = collate(data.train[:1])
    runs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        runs.append(teacher.generate(batch.phonemes, batch.src_lengths, batch.mel_lengths)[0])
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_generation_gives_the_mode_back(data: TTSData) -> None:
    teacher = _teacher(data).train()
    batch = collate(data.train[:1])
    teacher.generate(batch.phonemes, batch.src_lengths, batch.mel_lengths)
    assert teacher.training and all(m.training for m in teacher.modules())


def test_distillation_gives_a_mel_and_durations_per_utterance(data: TTSData) -> None:
    items = data.train[:3]
    distilled = distill(_teacher(data), items, batch_size=2)
    assert len(distilled.mels) == len(distilled.durations) == 3 and 0 <= distilled.head < 2 * 2
    for mel, durations, item in zip(distilled.mels, distilled.durations, items):
        assert mel.shape == item.mel.shape and durations.shape == item.phonemes.shape
        assert int(durations.sum()) == item.mel.shape[0]
    assert distilled.seconds > 0


@pytest.mark.parametrize(
    ("config", "kwargs", "name"),
    [
        (TeacherConfig, {"d_model": 0}, "teacher.d_model"),
        (TeacherConfig, {"d_model": 33}, "teacher.num_heads"),
        (TeacherConfig, {"dropout": math.nan}, "teacher.dropout"),
        (TeacherConfig, {"guided_sigma": 0.0}, "teacher.guided_sigma"),
        (TeacherConfig, {"num_steps": 1.5}, "teacher.num_steps"),
        (TeacherConfig, {"lr": -1.0}, "teacher.lr"),
        (TeacherConfig, {"grad_clip": math.inf}, "teacher.grad_clip"),
        (TeacherConfig, {"reduction": 0}, "teacher.reduction"),
        (WaveConfig, {"num_steps": 0}, "wave.num_steps"),
        (WaveConfig, {"gan_start": -1}, "wave.gan_start"),
        (WaveConfig, {"adversarial_weight": math.nan}, "wave.adversarial_weight"),
        (WaveConfig, {"lr": 0.0}, "wave.lr"),
        (WaveConfig, {"channels": True}, "wave.channels"),
    ],
)
def test_teacher_and_wave_configs_refuse_bad_values_by_name(config: type, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        config(**kwargs)


def test_extracted_durations_sum_to_the_frames_and_follow_the_peaks() -> None:
    attention = torch.zeros(1, 2, 6, 3)
    attention[0, 0, :, 0] = 1 / 3  # head 0: flat, unfocused
    attention[0, 0, :, 1:] = 1 / 3
    peaks = [0, 0, 1, 2, 2, 2]
    attention[0, 1, torch.arange(6), peaks] = 1.0  # head 1: a sharp monotonic alignment
    rates = focus_rate(attention, torch.tensor([6]))
    assert rates[0, 1] == pytest.approx(1.0) and rates[0, 0] == pytest.approx(1 / 3)
    durations, head = extract_durations(attention, torch.tensor([3]), torch.tensor([6]))
    assert head == 1 and durations[0].tolist() == [2, 1, 3]


def test_guided_attention_penalises_off_diagonal_only_inside_the_utterance() -> None:
    w = guided_attention_weights(torch.tensor([4, 2]), torch.tensor([8, 4]), sigma=0.2)
    assert w.shape == (2, 8, 4)
    assert float(w[0, 0, 0]) == 0.0 and float(w[0, 7, 0]) > 0.9  # diagonal free, far corner penalised
    assert bool((w[1, 4:] == 0).all()) and bool((w[1, :, 2:] == 0).all())  # padding is not penalised


def test_teacher_loss_falls_on_a_tiny_batch(data: TTSData) -> None:
    teacher = _teacher(data).train()
    batch = collate(data.train[:3])
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    values = []
    for _ in range(40):
        losses = teacher.loss(teacher(batch), batch)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        values.append(losses["mel"].item())
    assert values[-1] < 0.6 * values[0]


def test_wave_decoder_upsamples_by_the_hop_and_slices_line_up() -> None:
    torch.manual_seed(0)
    decoder = WaveDecoder(d_model=16, channels=8, num_layers=2)
    assert decoder(torch.randn(2, 5, 16)).shape == (2, 5 * HOP_LENGTH)
    hidden = torch.arange(10, dtype=torch.float32)[None, :, None].expand(1, 10, 3)
    wave = torch.arange(10 * HOP_LENGTH, dtype=torch.float32)
    piece, audio = random_slices(hidden, torch.tensor([10]), [wave], 4, torch.Generator().manual_seed(1))
    start = int(piece[0, 0, 0])
    assert piece[0, :, 0].tolist() == [start, start + 1, start + 2, start + 3]
    assert int(audio[0, 0]) == start * HOP_LENGTH and audio.shape == (1, 4 * HOP_LENGTH)
    assert Discriminator(channels=8, num_layers=3)(audio).shape == audio.shape


def test_stft_loss_is_zero_for_equal_waves_and_grows_with_the_difference() -> None:
    t = torch.arange(4096) / SAMPLE_RATE
    real = torch.sin(2 * math.pi * 220 * t)[None]
    assert float(multi_resolution_stft_loss(real, real)) == pytest.approx(0.0, abs=1e-6)
    near = float(multi_resolution_stft_loss(real * 0.9, real))
    far = float(multi_resolution_stft_loss(torch.sin(2 * math.pi * 880 * t)[None], real))
    assert 0 < near < far
    with pytest.raises(ValueError, match="same shape"):
        multi_resolution_stft_loss(real[:, :100], real)


def test_mcd_is_zero_for_identical_mels_and_dtw_absorbs_a_time_stretch() -> None:
    torch.manual_seed(0)
    mel = torch.randn(30, 80)
    assert mel_cepstral_distortion(mel, mel)[0] == pytest.approx(0.0, abs=1e-9)
    stretched = mel.repeat_interleave(2, dim=0)  # every frame twice
    mcd, path = mel_cepstral_distortion(stretched, mel)
    assert mcd == pytest.approx(0.0, abs=1e-9) and path[0] == (0, 0) and path[-1] == (59, 29)
    assert mel_cepstral_distortion(mel + torch.randn(30, 80), mel)[0] > 1.0


def test_cepstra_of_a_pure_cosine_ripple() -> None:
    """``log|X| = 2 c_k cos(k w)`` gives back ``c_k`` and nothing else."""
    omega = math.pi * (torch.arange(80, dtype=torch.float64) + 0.5) / 80
    c = cepstra((2 * 0.3 * torch.cos(3 * omega))[None].float())
    assert c[0, 2] == pytest.approx(0.3, abs=1e-6) and np.abs(np.delete(c[0], 2)).max() < 1e-6


def test_dtw_path_is_the_diagonal_for_identical_sequences() -> None:
    a = np.arange(5, dtype=float)[:, None]
    assert dtw_path(a, a) == [(i, i) for i in range(5)]


def test_pitch_moments() -> None:
    f0 = torch.tensor([0.0, 100.0, 110.0, 0.0, 120.0, 130.0])
    std, skew, kurt = pitch_moments(f0)
    assert std == pytest.approx(float(torch.tensor([100.0, 110, 120, 130]).std(unbiased=False)))
    assert skew == pytest.approx(0.0, abs=1e-9) and kurt == pytest.approx(-1.36, abs=1e-9)
    assert all(math.isnan(x) for x in pitch_moments(torch.tensor([0.0, 100.0])))


def test_real_time_factor_counts_mel_frames_and_samples() -> None:
    rtf_wave = real_time_factor(lambda: torch.zeros(SAMPLE_RATE))
    rtf_mel = real_time_factor(lambda: torch.zeros(SAMPLE_RATE // HOP_LENGTH, 80))
    assert 0 < rtf_wave < 0.1 and 0 < rtf_mel < 0.1
