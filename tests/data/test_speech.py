from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from reprobook.data.speech import (
    HOP_LENGTH,
    N_MELS,
    PAUSE,
    SAMPLE_RATE,
    VOICES,
    Utterance,
    build_corpus,
    durations_in_frames,
    frame_count,
    frame_energy,
    frame_pitch,
    log_mel,
    synthesize,
)
from reprobook.data.speech import corpus as corpus_module
from reprobook.data.text import LANGUAGES, NUM_TEMPLATES, numbers, sentence

SENTENCES = {
    "en": "I counted twenty three birds.",
    "es": "Conté veintitrés pájaros.",
    "fr": "J'ai compté vingt-trois oiseaux.",
    "de": "Ich habe dreiundzwanzig Vögel gezählt.",
    "it": "Ho contato ventitré uccelli.",
}


def _assert_tiles(utterance: Utterance) -> None:
    starts, ends = utterance.starts, utterance.ends
    assert len(utterance.phonemes) == starts.numel() == ends.numel()
    assert starts[0] == 0 and ends[-1] == utterance.waveform.numel()
    assert torch.equal(starts[1:], ends[:-1])
    assert bool((ends >= starts).all())


def test_waveform_shape_rate_and_range() -> None:
    utterance = synthesize("The train leaves from platform nine.")
    waveform = utterance.waveform
    assert SAMPLE_RATE == 22050
    assert waveform.dtype == torch.float32 and waveform.ndim == 1
    assert 1.0 < utterance.duration < 4.0 and utterance.duration == waveform.numel() / SAMPLE_RATE
    assert waveform.abs().max() <= 1.0
    assert waveform.abs().max() > 0.05  # audible, not silence


@pytest.mark.parametrize("voice", sorted(VOICES))
def test_every_voice_gives_phonemes_that_tile_the_audio(voice: str) -> None:
    utterance = synthesize(SENTENCES[voice], voice=voice)
    spoken = [p for p in utterance.phonemes if p != PAUSE]
    assert len(spoken) >= 10
    assert all(p and not p.startswith(("_", "(")) for p in spoken)
    _assert_tiles(utterance)
    assert not any(a == b == PAUSE for a, b in zip(utterance.phonemes, utterance.phonemes[1:]))  # merged


def test_synthesis_is_deterministic_whatever_ran_before() -> None:
    first = synthesize("hello world", voice="en")
    synthesize("Ich habe dreiundzwanzig Vögel gezählt.", voice="de", rate=300, pitch=90)
    again = synthesize("hello world", voice="en")
    assert torch.equal(first.waveform, again.waveform)
    assert first.phonemes == again.phonemes and torch.equal(first.starts, again.starts)
    faster = synthesize("hello world", voice="en", rate=300)
    assert faster.waveform.numel() < first.waveform.numel()


def test_synthesis_is_thread_safe() -> None:
    jobs = [(SENTENCES[v], v) for v in sorted(VOICES)] * 2
    expected = [synthesize(text, voice=voice).waveform for text, voice in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda job: synthesize(job[0], voice=job[1]).waveform, jobs))
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


@pytest.mark.parametrize(
    ("voice", "rate", "pitch"), [("en", 175, 50), ("es", 120, 30), ("fr", 260, 70), ("de", 200, 50), ("it", 90, 60)]
)
def test_features_share_one_frame_grid_and_durations_sum_exactly(voice: str, rate: int, pitch: int) -> None:
    utterance = synthesize(SENTENCES[voice], voice=voice, rate=rate, pitch=pitch)
    mel = log_mel(utterance.waveform)
    num_frames = 1 + utterance.waveform.numel() // HOP_LENGTH
    assert frame_count(utterance.waveform.numel()) == num_frames
    assert mel.shape == (N_MELS, num_frames) and mel.dtype == torch.float32
    assert frame_pitch(utterance.waveform).shape == frame_energy(utterance.waveform).shape == (num_frames,)
    durations = durations_in_frames(utterance, num_frames)
    assert durations.dtype == torch.int64 and durations.shape == (len(utterance.phonemes),)
    assert int(durations.sum()) == num_frames and bool((durations >= 0).all())
    # Each phoneme gets its length in hops, to within the rounding of its two ends.
    in_hops = (utterance.ends - utterance.starts).double() / HOP_LENGTH
    error = (durations.double() - in_hops).abs()
    assert bool((error[:-1] < 1).all()) and error[-1] < 2
    # A neighbouring frame count (another padding convention) still sums exactly.
    assert int(durations_in_frames(utterance, num_frames - 1).sum()) == num_frames - 1


def test_log_mel_clamps_silence_and_sees_speech() -> None:
    silence = log_mel(torch.zeros(4000))
    assert torch.allclose(silence, torch.full_like(silence, math.log(1e-5)))
    speech = log_mel(synthesize("She walked nine miles today.").waveform)
    assert speech.max() > 0.0  # speech reaches magnitudes above 1 in some band


def test_energy_of_a_bin_centred_sine() -> None:
    # A sine on an FFT bin under a Hann window puts A*N/4 in its bin and A*N/8 in both
    # neighbours, so the L2 norm of the magnitude frame is A*N/4*sqrt(1.5).
    amplitude, bin_index, n_fft = 0.5, 20, 1024
    t = torch.arange(SAMPLE_RATE, dtype=torch.float64) / SAMPLE_RATE
    tone = (amplitude * torch.sin(2 * math.pi * bin_index * SAMPLE_RATE / n_fft * t)).float()
    energy = frame_energy(tone)[4:-4]
    assert torch.allclose(energy, torch.full_like(energy, amplitude * n_fft / 4 * math.sqrt(1.5)), rtol=1e-3)
    assert bool((frame_energy(torch.zeros(3000)) == 0).all())


@pytest.mark.parametrize("f0", [60.0, 110.0, 220.0, 440.0])
def test_pitch_of_a_harmonic_tone(f0: float) -> None:
    t = torch.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = sum(0.3 / k * torch.sin(2 * math.pi * f0 * k * t) for k in range(1, 6))
    assert isinstance(tone, torch.Tensor)
    pitch = frame_pitch(tone)[3:-3]
    assert bool((pitch - f0).abs().max() < 0.01 * f0)


@pytest.mark.parametrize("f0", [120.0, 150.0])
def test_pitch_is_not_fooled_by_a_strong_second_harmonic(f0: float) -> None:
    # The 2nd harmonic dominates, as when F1 sits near 2 F0: plain YIN reports 2 F0 here.
    t = torch.arange(SAMPLE_RATE) / SAMPLE_RATE
    phase = 2 * math.pi * f0 * t
    tone = 0.1 * torch.sin(phase) + 0.5 * torch.sin(2 * phase + 1.0) + 0.1 * torch.sin(3 * phase)
    pitch = frame_pitch(tone)[3:-3]
    assert bool((pitch - f0).abs().max() < 0.01 * f0)


def test_pitch_is_zero_for_silence_and_noise() -> None:
    assert bool((frame_pitch(torch.zeros(5000)) == 0).all())
    noise = 0.1 * torch.randn(SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    assert (frame_pitch(noise) > 0).float().mean() < 0.05


def test_pitch_rises_with_espeak_pitch() -> None:
    text = "The train leaves from platform nine."
    medians = []
    for setting in (20, 80):
        pitch = frame_pitch(synthesize(text, pitch=setting).waveform)
        assert (pitch > 0).float().mean() > 0.2  # vowels are voiced
        medians.append(float(pitch[pitch > 0].median()))
    low, high = medians
    assert 60 < low < 120 < high < 250
    assert high > 1.3 * low


def _assert_same(a: corpus_module.SpeechCorpus, b: corpus_module.SpeechCorpus) -> None:
    assert a.vocab == b.vocab and len(a) == len(b)
    for x, y in zip(a.examples, b.examples):
        assert (x.text, x.voice, x.rate, x.pitch_setting, x.intonation, x.phonemes) == (
            y.text,
            y.voice,
            y.rate,
            y.pitch_setting,
            y.intonation,
            y.phonemes,
        )
        for name in ("phoneme_ids", "durations", "mel", "pitch", "energy", "waveform"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name


def test_corpus_examples_are_consistent(tmp_path: Path) -> None:
    corpus = build_corpus(4, voice="en", seed=0, cache_dir=tmp_path)
    assert len(corpus) == 4 and corpus.vocab[:2] == ["<pad>", PAUSE]
    assert len(set(corpus.vocab)) == len(corpus.vocab)
    assert len({(e.rate, e.pitch_setting) for e in corpus.examples}) > 1  # settings vary
    drawn = corpus_module._sentences(4, "en", seed=0)
    assert [(e.text, e.rate, e.pitch_setting, e.intonation) for e in corpus.examples] == drawn
    for example in corpus.examples:
        assert not any(c.isdigit() for c in example.text)  # numbers are spelled out
        assert [corpus.vocab[i] for i in example.phoneme_ids] == example.phonemes
        assert torch.equal(corpus.encode(example.phonemes), example.phoneme_ids)
        num_frames = frame_count(example.waveform.numel())
        assert example.mel.shape == (N_MELS, num_frames)
        assert example.pitch.shape == example.energy.shape == (num_frames,)
        assert int(example.durations.sum()) == num_frames


def _text_sentences(lang: str) -> dict[str, tuple[int, int]]:
    """Every sentence of :mod:`reprobook.data.text` in ``lang`` -> its ``(number, template)``."""
    return {sentence(n, t, lang): (n, t) for t in range(NUM_TEMPLATES) for n in numbers()}


@pytest.mark.parametrize("voice", sorted(VOICES))
def test_corpus_speaks_each_language(voice: str, tmp_path: Path) -> None:
    (example,) = build_corpus(1, voice=voice, seed=3, cache_dir=tmp_path).examples
    assert example.text in _text_sentences(voice)  # one of the text module's sentences
    assert example.voice == voice and len(example.phonemes) > 5


def test_corpus_sentences_are_the_text_sentences_translated_across_voices() -> None:
    assert set(VOICES) <= set(LANGUAGES)
    # The sentences alone (no synthesis): one seed draws the same (number, template) in every voice.
    draws = {}
    for voice in sorted(VOICES):
        known = _text_sentences(voice)
        drawn = corpus_module._sentences(300, voice, seed=5)
        assert all(text in known for text, *_ in drawn), voice
        draws[voice] = [(known[text], *settings) for text, *settings in drawn]
        assert corpus_module._sentences(40, voice, seed=5) == drawn[:40]  # a prefix of a longer draw
    assert all(d == draws["en"] for d in draws.values())
    numbers_drawn = {n for (n, _), *_ in draws["en"]}
    assert min(numbers_drawn) >= 2 and max(numbers_drawn) <= 999 and len(numbers_drawn) > 200
    assert len({t for (_, t), *_ in draws["en"]}) == NUM_TEMPLATES
    spanish = [text for text, *_ in corpus_module._sentences(300, "es", seed=5)]
    assert not [t for t in spanish if " uno " in f" {t} " or "veintiuno" in t]  # apocope before the noun
    assert any("veintiún" in t or " y un " in t for t in spanish)


def test_corpus_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = build_corpus(3, voice="de", seed=0, cache_dir=tmp_path / "a")
    _assert_same(a, build_corpus(3, voice="de", seed=0, cache_dir=tmp_path / "b"))
    other = build_corpus(3, voice="de", seed=1, cache_dir=tmp_path / "a")
    assert [e.text for e in other.examples] != [e.text for e in a.examples]


def test_corpus_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = build_corpus(3, voice="es", seed=1, cache_dir=tmp_path)
    (path,) = (tmp_path / "speech").glob("*.pt")
    assert path.name.startswith("corpus-es-3-")

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached corpus should have been loaded, not synthesised")

    monkeypatch.setattr(corpus_module, "synthesize", fail)
    _assert_same(built, build_corpus(3, voice="es", seed=1, cache_dir=tmp_path))
    with pytest.raises(AssertionError, match="cached"):  # other arguments, other file
        build_corpus(3, voice="es", seed=2, cache_dir=tmp_path)


def test_corpus_cache_defaults_to_reprobook_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROBOOK_DATA", str(tmp_path))
    build_corpus(1, voice="it")
    assert len(list((tmp_path / "speech").glob("corpus-it-1-*.pt"))) == 1


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: synthesize(""), "text"),
        (lambda: synthesize("  \n"), "text"),
        (lambda: synthesize("..."), "text"),  # speaks no phoneme
        (lambda: synthesize("hello", voice="klingon"), "voice"),
        (lambda: synthesize("hello", voice="en-us"), "voice"),
        (lambda: synthesize("hello", rate=50), "rate"),
        (lambda: synthesize("hello", rate=451), "rate"),
        (lambda: synthesize("hello", pitch=-1), "pitch"),
        (lambda: synthesize("hello", pitch=101), "pitch"),
        (lambda: log_mel(torch.zeros(2, 4000)), "waveform"),
        (lambda: frame_pitch(torch.zeros(100)), "waveform"),
        (lambda: frame_pitch(torch.zeros(4000), f0_min=200.0, f0_max=300.0), "f0_max"),
        (lambda: build_corpus(0), "num_utterances"),
        (lambda: build_corpus(2, voice="pt"), "voice"),
    ],
)
def test_bad_inputs_name_the_argument(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        call()


def test_unknown_voice_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as error:
        synthesize("hello", voice="xx")
    assert all(repr(voice) in str(error.value) for voice in ("en", "es", "fr", "de", "it"))


def test_mismatched_frame_count_and_unknown_phoneme_are_rejected(tmp_path: Path) -> None:
    utterance = synthesize("hello world")
    with pytest.raises(ValueError, match="num_frames"):
        durations_in_frames(utterance, frame_count(utterance.waveform.numel()) + 5)
    corpus = build_corpus(1, voice="en", seed=0, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="not in this corpus"):
        corpus.encode(["'aI", "no-such-phoneme"])


def test_intonation_widens_the_pitch_movement() -> None:
    text = "The train leaves from platform nine."
    spreads = []
    for setting in (0, 100):
        pitch = frame_pitch(synthesize(text, pitch=80, intonation=setting).waveform)
        voiced = torch.log(pitch[pitch > 0])
        spreads.append(float(voiced.std()))
    flat, lively = spreads
    assert lively > 2 * flat
    with pytest.raises(ValueError, match="intonation"):
        synthesize(text, intonation=101)
