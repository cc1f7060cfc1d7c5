"""FastSpeech 2: length regulator, CWT pitch, the model's shapes, controls, losses, a tiny overfit, bad inputs;
the run config, training each system and evaluating it."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from reprobook.fastspeech2 import (
    FastSpeech2,
    FastSpeech2Config,
    FastSpeech2Result,
    FastSpeech2s,
    Stats,
    TeacherConfig,
    TransformerTTS,
    TTSData,
    WaveConfig,
    build_model,
    collate,
    cwt_decompose,
    cwt_reconstruct,
    durations_to_mel2ph,
    encode_text,
    evaluate,
    length_regulate,
    load_data,
    split_corpus,
    train,
)
from reprobook.fastspeech2.variance import check_durations, interpolate_unvoiced

TINY = {"d_model": 32, "d_ff": 64, "kernel_sizes": (3, 1), "predictor_filter": 32}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TTSData:
    config = FastSpeech2Config(num_utterances=14, num_valid=2, num_test=2)
    return load_data(config, cache_dir=str(tmp_path_factory.mktemp("speech")))


def _model(data: TTSData, **kwargs: Any) -> FastSpeech2:
    torch.manual_seed(0)
    model = build_model(FastSpeech2Config(**TINY, **kwargs), data)
    assert isinstance(model, FastSpeech2)
    return model


def _run_config(**kwargs: Any) -> FastSpeech2Config:
    """A run of a few steps of tiny models (teacher and waveform decoder included)."""
    teacher = TeacherConfig(d_model=32, d_ff=64, num_steps=3, warmup=2)
    wave = WaveConfig(num_steps=3, gan_start=1, channels=8, num_layers=2)
    recipe = {"num_steps": 3, "warmup": 2, "eval_every": 2, "batch_size": 4}
    return FastSpeech2Config(**{**TINY, **recipe, "teacher": teacher, "wave": wave, **kwargs})


def test_durations_sum_to_mel_frames_and_targets_line_up(data: TTSData) -> None:
    assert len(data.train) == 10 and len(data.valid) == 2 and len(data.test) == 2
    assert not {i.text for i in data.test} & {i.text for i in data.train}  # held-out sentences
    for item in data.train + data.valid + data.test:
        frames = item.mel.shape[0]
        assert int(item.durations.sum()) == frames
        assert item.f0.shape == item.energy.shape == (frames,) and item.cwt.shape == (frames, 10)
        assert bool((item.f0 > 0).all())  # unvoiced frames interpolated


def naive_length_regulate(h: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """The textbook loop (ming024's ``LengthRegulator``): repeat each row, concatenate, pad."""
    rows = [torch.repeat_interleave(hb, db.long(), dim=0) for hb, db in zip(h, durations)]
    width = max(r.shape[0] for r in rows)
    return torch.stack([F.pad(r, (0, 0, 0, width - r.shape[0])) for r in rows])


@pytest.mark.parametrize("seed", range(5))
def test_length_regulator_equals_the_naive_loop_including_zero_durations(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    durations = torch.randint(0, 4, (3, 7), generator=generator)
    durations[0, :3] = 0  # leading zeros
    durations[2] = 0  # an utterance of length zero
    durations[2, -1] = 2
    h = torch.randn(3, 7, 5, generator=generator)
    out, lengths = length_regulate(h, durations)
    torch.testing.assert_close(out, naive_length_regulate(h, durations))
    assert lengths.tolist() == durations.sum(1).tolist()
    mel2ph = durations_to_mel2ph(durations)
    for b in range(3):
        assert mel2ph[b, : lengths[b]].tolist() == [
            i + 1 for i, d in enumerate(durations[b].tolist()) for _ in range(d)
        ]
        assert bool((mel2ph[b, lengths[b] :] == 0).all())


def test_length_regulator_pads_and_cuts_to_max_frames() -> None:
    h = torch.randn(1, 3, 4)
    out, lengths = length_regulate(h, torch.tensor([[2, 3, 4]]), max_frames=12)
    assert out.shape == (1, 12, 4) and bool((out[0, 9:] == 0).all()) and lengths.tolist() == [9]
    cut, _ = length_regulate(h, torch.tensor([[2, 3, 4]]), max_frames=4)
    torch.testing.assert_close(cut[0], torch.stack([h[0, 0], h[0, 0], h[0, 1], h[0, 1]]))


@pytest.mark.parametrize(
    ("durations", "match"),
    [
        (torch.tensor([[1, -1, 2]]), ">= 0"),
        (torch.tensor([[1.0, math.nan, 2.0]]), "NaN"),
        (torch.tensor([[1.0, math.inf, 2.0]]), "NaN or infinite"),
        (torch.tensor([[1.5, 1.0, 2.0]]), "whole numbers"),
        (torch.tensor([[1, 2]]), "lengths must match"),
    ],
)
def test_bad_durations_give_a_clear_error(durations: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        length_regulate(torch.randn(1, 3, 4), durations)


def test_cwt_has_ten_scales_and_reconstructs_a_contour() -> None:
    t = torch.arange(200, dtype=torch.float64) * 0.0116
    lf0 = torch.sin(2 * math.pi * 1.3 * t) + 0.5 * torch.sin(2 * math.pi * 4.1 * t)
    lf0 = (lf0 - lf0.mean()) / lf0.std()
    w = cwt_decompose(lf0)
    assert w.shape == (200, 10)
    rebuilt = cwt_reconstruct(w)
    assert abs(float(rebuilt.mean())) < 1e-6 and abs(float(rebuilt.std()) - 1) < 1e-6
    assert float(torch.corrcoef(torch.stack([rebuilt, lf0]))[0, 1]) > 0.9


def test_cwt_reconstructs_the_corpus_pitch(data: TTSData) -> None:
    item = data.train[0]
    z = (torch.log(item.f0) - item.lf0_mean) / item.lf0_std
    assert float(torch.corrcoef(torch.stack([cwt_reconstruct(item.cwt), z]))[0, 1]) > 0.8


def test_masked_reconstruction_ignores_padding() -> None:
    w = torch.randn(2, 30, 10)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 20:] = False
    out = cwt_reconstruct(w, mask)
    torch.testing.assert_close(out[1, :20], cwt_reconstruct(w[1, :20]))
    assert bool((out[1, 20:] == 0).all())


def test_interpolate_unvoiced() -> None:
    f0 = torch.tensor([0.0, 100.0, 0.0, 0.0, 130.0, 0.0])
    assert interpolate_unvoiced(f0).tolist() == pytest.approx([100, 100, 110, 120, 130, 130])
    assert interpolate_unvoiced(torch.zeros(4)).tolist() == [100.0] * 4


@pytest.mark.parametrize("pitch", ["cwt", "frame", "none"])
@pytest.mark.parametrize("energy", [True, False])
def test_forward_shapes_and_finite_loss(data: TTSData, pitch: str, energy: bool) -> None:
    model = _model(data, pitch=pitch, energy=energy)
    batch = collate(data.train[:3])
    out = model(batch)
    b, t = batch.mel.shape[:2]
    assert out["mel"].shape == (b, t, 80) and out["log_duration"].shape == batch.phonemes.shape
    assert ("pitch" in out) == (pitch != "none") and ("energy" in out) == energy
    if pitch == "cwt":
        assert out["pitch"].shape == (b, t, 10) and out["pitch_stats"].shape == (b, 2)
    losses = model.loss(out, batch)
    assert set(losses) == {"loss", "mel", "duration"} | ({"pitch"} if pitch != "none" else set()) | (
        {"energy"} if energy else set()
    )
    assert all(bool(torch.isfinite(v)) for v in losses.values())
    losses["loss"].backward()


def test_padding_does_not_change_an_utterance(data: TTSData) -> None:
    model = _model(data).eval()
    alone = model.infer(data.train[0].phonemes)
    together = model.infer(collate(data.train[:3]).phonemes)
    t = int(alone["mel_lengths"][0])
    assert int(together["mel_lengths"][0]) == t
    torch.testing.assert_close(together["mel"][0, :t], alone["mel"][0], atol=1e-4, rtol=1e-4)


def test_controls_change_length_pitch_and_energy_as_asked(data: TTSData) -> None:
    model = _model(data).eval()
    with torch.no_grad():  # durations of about 4 frames per phoneme, so rounding stays small
        model.duration_predictor.out.bias.fill_(math.log(5.0))
        model.duration_predictor.out.weight.mul_(0.01)
    ids = data.train[0].phonemes
    base = model.infer(ids)
    n = int(base["mel_lengths"][0])
    for speed in (0.8, 1.25):
        out = model.infer(ids, speed=speed)
        assert abs(int(out["mel_lengths"][0]) / n - 1 / speed) < 0.1
    faster = model.infer(ids, speed=1.25)
    assert faster["mel"].shape[1] < n < model.infer(ids, speed=0.8)["mel"].shape[1]
    for factor in (0.8, 1.2):
        out = model.infer(ids, pitch=factor)
        torch.testing.assert_close(out["f0"], base["f0"] * factor)
        torch.testing.assert_close(out["energy"], base["energy"])  # the pitch knob leaves energy alone
    louder, quieter = model.infer(ids, energy=1.5), model.infer(ids, energy=0.5)
    assert bool((louder["energy"] >= base["energy"]).all()) and bool((quieter["energy"] <= base["energy"]).all())
    torch.testing.assert_close(louder["f0"], base["f0"])  # ming024's bug: the energy knob read the pitch control
    assert not torch.allclose(louder["mel"], base["mel"])


def test_oracle_durations_give_the_recorded_length(data: TTSData) -> None:
    model = _model(data)
    item = data.train[1]
    out = model.infer(item.phonemes, durations=item.durations[None])
    assert out["mel"].shape[1] == item.mel.shape[0]
    torch.testing.assert_close(out["durations"][0], item.durations)


def test_all_zero_predicted_durations_still_give_one_frame(data: TTSData) -> None:
    model = _model(data).eval()
    with torch.no_grad():
        model.duration_predictor.out.bias.fill_(-20.0)
        model.duration_predictor.out.weight.zero_()
    assert model.infer(data.train[0].phonemes)["mel"].shape[1] == 1


def test_tiny_overfit(data: TTSData) -> None:
    model = _model(data)
    batch = collate(data.train[:4])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        losses = model.loss(model(batch), batch)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        first = first if first is not None else {k: v.item() for k, v in losses.items()}
    assert losses["mel"].item() < 0.5 * first["mel"]
    assert losses["loss"].item() < 0.5 * first["loss"]


def test_bad_inputs_give_clear_errors(data: TTSData) -> None:
    model = _model(data)
    with pytest.raises(ValueError, match="non-empty"):
        model.infer(torch.zeros(1, 0, dtype=torch.long))
    for name in ("speed", "pitch", "energy"):
        with pytest.raises(ValueError, match=name):
            model.infer(data.train[0].phonemes, **{name: 0.0})
        with pytest.raises(ValueError, match=name):
            model.infer(data.train[0].phonemes, **{name: math.nan})
    with pytest.raises(ValueError, match="lengths must match"):
        model.infer(data.train[0].phonemes, durations=torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="text"):
        encode_text(data, "")
    with pytest.raises(ValueError, match="no phonemes"):
        encode_text(data, "...")
    with pytest.raises(ValueError, match="pitch="):
        FastSpeech2Config(pitch="f0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vocab_size"):
        FastSpeech2(FastSpeech2Config(), 1, Stats(5.0, 0.2, 0.0, 1.0))
    item = data.train[0]
    with pytest.raises(ValueError, match="must agree"):
        collate([item], mels=[item.mel[:-1]])
    with pytest.raises(ValueError, match="at least one"):
        collate([])


def test_encode_text_gives_corpus_ids(data: TTSData) -> None:
    ids = encode_text(data, data.train[0].text)
    assert ids.dtype == torch.int64 and ids.ndim == 1 and int(ids.min()) >= 1


def test_check_durations_accepts_float_whole_numbers() -> None:
    assert check_durations(torch.tensor([1.0, 0.0, 3.0])).dtype == torch.int64


def test_too_small_a_corpus_is_refused() -> None:
    with pytest.raises(ValueError, match="too little"):
        FastSpeech2Config(num_utterances=4, num_valid=2, num_test=2)
    with pytest.raises(TypeError, match="FastSpeech2Config"):
        load_data(400)  # type: ignore[arg-type]


def test_batches_are_bucketed_by_length_and_cover_the_data() -> None:
    from reprobook.fastspeech2.data import batch_indices

    lengths = list(range(100, 164))
    stream = batch_indices(lengths, 4, seed=0, pool=4)
    epoch = [next(stream) for _ in range(16)]  # 64 items / 4 per batch
    assert sorted(i for ids in epoch for i in ids) == list(range(64))
    assert all(len(ids) == 4 for ids in epoch)
    mean_spread = sum(max(lengths[i] for i in ids) - min(lengths[i] for i in ids) for ids in epoch) / 16
    assert mean_spread < 16  # 4 random lengths out of 64 consecutive ones span about 38 on average
    with pytest.raises(ValueError, match="batch_size"):
        next(batch_indices(lengths, 0))


def test_any_speech_corpus_can_be_split(tmp_path: Path) -> None:
    from reprobook.data.speech import build_corpus

    corpus = build_corpus(8, voice="en", seed=3, cache_dir=str(tmp_path))
    data = split_corpus(corpus, num_valid=2, num_test=2, seed=3)
    assert len(data.train) + len(data.valid) + len(data.test) == 8 and data.vocab == corpus.vocab
    with pytest.raises(ValueError, match="too little"):
        split_corpus(corpus, num_valid=4, num_test=4)


def test_ljspeech_needs_consent_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reprobook.data.download import DownloadNotAllowedError

    monkeypatch.delenv("REPROBOOK_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(DownloadNotAllowedError, match="REPROBOOK_ALLOW_DOWNLOAD"):
        load_data(
            FastSpeech2Config(dataset="ljspeech", num_utterances=20, num_valid=2, num_test=2), cache_dir=str(tmp_path)
        )


# ------------------------------------------------------------------------------------------------------------------
# The run config, training and evaluation
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "tacotron"),
        ("dataset", "vctk"),
        ("num_utterances", 0),
        ("num_valid", 0),
        ("num_test", 1.0),
        ("data_seed", -1),
        ("d_model", 0),
        ("num_heads", 3),
        ("encoder_layers", 0),
        ("decoder_layers", -1),
        ("d_ff", 0),
        ("kernel_sizes", (2, 1)),
        ("kernel_sizes", (3,)),
        ("dropout", math.nan),
        ("dropout", 1.5),
        ("predictor_filter", 0),
        ("predictor_dropout", -0.1),
        ("num_bins", 1),
        ("pitch_range_hz", (300.0, 80.0)),
        ("pitch_range_hz", (0.0, 300.0)),
        ("pitch_range_hz", (80.0, math.nan)),
        ("pitch", "f0"),
        ("energy", 1),
        ("max_len", 0),
        ("num_steps", 0),
        ("batch_size", 0),
        ("lr", math.inf),
        ("warmup", 0),
        ("grad_clip", 0.0),
        ("eval_every", 0),
        ("seed", -1),
        ("teacher", {"d_model": 64}),
        ("wave", None),
    ],
)
def test_config_refuses_every_bad_field_by_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        FastSpeech2Config(**{field: value})


def test_the_fastspeech_student_has_no_variance_predictor() -> None:
    with pytest.raises(ValueError, match="pitch='none', energy=False"):
        FastSpeech2Config(model="fastspeech")
    with pytest.raises(ValueError, match="pitch='none', energy=False"):
        FastSpeech2Config(model="fastspeech", pitch="none")
    config = FastSpeech2Config(model="fastspeech", pitch="none", energy=False)
    assert config.label == "FastSpeech"
    assert FastSpeech2Config().label == "FastSpeech 2"
    assert FastSpeech2Config(pitch="frame", energy=False).label == "FastSpeech 2 (frame F0, without energy)"
    assert FastSpeech2Config(model="fastspeech2s").label == "FastSpeech 2s"


def test_profile_defaults_follow_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROBOOK_PROFILE", "smoke")
    smoke = FastSpeech2Config()
    monkeypatch.setenv("REPROBOOK_PROFILE", "full")
    full = FastSpeech2Config()
    assert (smoke.d_model, smoke.num_steps, smoke.teacher.num_steps, smoke.wave.num_steps) == (32, 12, 12, 6)
    assert (full.d_model, full.kernel_sizes, full.teacher.d_model, full.wave.num_steps) == (256, (9, 1), 256, 50_000)


def test_build_model_sizes_the_system_for_the_data(data: TTSData) -> None:
    model = build_model(FastSpeech2Config(**TINY), data)
    assert isinstance(model, FastSpeech2) and model.embed.num_embeddings == len(data.vocab)
    student = build_model(FastSpeech2Config(**TINY, model="fastspeech", pitch="none", energy=False), data)
    assert isinstance(student, FastSpeech2) and student.pitch_predictor is None and student.energy_predictor is None
    assert isinstance(build_model(FastSpeech2Config(**TINY, model="fastspeech2s"), data), FastSpeech2s)


def test_training_fastspeech2_records_the_validation_curve(data: TTSData) -> None:
    result = train(_run_config(), data, progress=False)
    assert isinstance(result, FastSpeech2Result) and isinstance(result.model, FastSpeech2)
    assert result.history.num_steps == 3 and set(result.history.metrics) >= {"loss", "mel", "pitch", "energy"}
    steps, values = result.history.curve("valid_mel")
    assert steps == [2.0, 3.0] and result.metrics == {"valid_mel": values[-1]}
    assert result.seconds > 0 and result.stage_seconds == {"training": result.seconds}
    assert result.history.seconds_to("valid_mel", math.inf) == result.history.evaluations[0].seconds
    assert result.history.seconds_to("valid_mel", -1.0) is None
    assert not result.model.training and result.teacher is None and result.distilled is None


def test_validation_changes_nothing_in_training(data: TTSData) -> None:
    """Evaluating every step or only at the end gives the same weights: validation draws no random number and
    gives the model back in training mode."""
    often = train(_run_config(eval_every=1), data, progress=False)
    once = train(_run_config(eval_every=100), data, progress=False)
    assert len(often.history.evaluations) == 3 and len(once.history.evaluations) == 1
    for a, b in zip(often.model.state_dict().values(), once.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_the_fastspeech_pipeline(data: TTSData) -> None:
    result = train(_run_config(model="fastspeech", pitch="none", energy=False), data, progress=False)
    assert result.teacher is not None and result.distilled is not None
    assert isinstance(result.teacher.model, TransformerTTS) and isinstance(result.model, FastSpeech2)
    assert result.teacher.history.num_steps == 3 and result.teacher.history.curve("valid_mel")[0] == [2.0, 3.0]
    assert len(result.distilled.mels) == len(data.train)
    stages = result.stage_seconds
    assert list(stages) == ["teacher", "distillation", "student"] and stages["student"] == result.seconds
    assert all(s > 0 for s in stages.values())


def test_training_fastspeech2s(data: TTSData) -> None:
    result = train(_run_config(model="fastspeech2s"), data, progress=False)
    assert isinstance(result.model, FastSpeech2s) and result.history.num_steps == 3  # wave.num_steps
    assert result.history["adv"][0] == 0.0 and result.history["adv"][-1] > 0  # the GAN loss starts at gan_start
    assert set(result.history.metrics) >= {"loss", "mel", "stft", "adv", "disc"} and "valid_mel" in result.metrics
    wave = result.model.synthesize(data.test[0].phonemes)
    assert wave.ndim == 1 and bool(torch.isfinite(wave).all())


def test_evaluate_scores_every_system_and_gives_the_mode_back(data: TTSData) -> None:
    model = _model(data).train()
    with torch.no_grad():  # durations of about 4 frames per phoneme: enough frames for Griffin-Lim
        model.duration_predictor.out.bias.fill_(math.log(5.0))
        model.duration_predictor.out.weight.mul_(0.01)
    scores = evaluate(model, data)
    assert model.training and all(m.training for m in model.modules())
    row = scores.row()
    assert row["method"] == "FastSpeech 2" and set(row) == {
        "method",
        "MCD (dB)",
        "pitch std",
        "skewness",
        "kurtosis",
        "pitch DTW (Hz)",
        "voiced",
        "energy MAE",
        "duration MAE",
    }
    assert len(scores.synthesis.waveforms) == len(data.test) and "synthesis" not in repr(scores)
    assert scores.mcd > 0 and not math.isnan(scores.duration_mae)
    recordings = evaluate(None, data, "valid", label="ceiling")
    assert recordings.label == "ceiling" and math.isnan(recordings.duration_mae)
    assert recordings.synthesis.mels[0] is data.valid[0].mel
    assert evaluate(None, data).label == "recordings through Griffin-Lim"
    with pytest.raises(ValueError, match="split"):
        evaluate(model, data, "dev")


def test_a_batch_whose_durations_do_not_sum_to_the_mel_length_is_refused(data: TTSData) -> None:
    model = _model(data, pitch="cwt", energy=True)
    batch = collate(data.train[:2])
    durations = batch.durations.clone()
    durations[1, 0] += 3  # three frames more than utterance 1's mel holds
    with pytest.raises(ValueError, match=r"batch.durations of utterance 1 sum to"):
        model(dataclasses.replace(batch, durations=durations))
