"""LJSpeech loading and corpus building, offline: a three-clip LJSpeech-1.1 archive made in tmp_path from espeak
audio and served through a file:// URL with its checksum (never a real download)."""

from __future__ import annotations

import tarfile
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from reprobook.data import download
from reprobook.data.download import ALLOW_ENV, DATA_ENV, DownloadNotAllowedError, Resource, sha256_file
from reprobook.data.speech import (
    N_MELS,
    PAUSE,
    SAMPLE_RATE,
    Recording,
    build_ljspeech_corpus,
    durations_in_frames,
    frame_count,
    frame_energy,
    frame_pitch,
    log_mel,
    read_ljspeech,
    synthesize,
)
from reprobook.data.speech import ljspeech as ljspeech_module

# (id, raw text, normalized text, espeak rate, espeak pitch): the "reader" is espeak at other settings than the
# reference's defaults (rate 175, pitch 50), so each clip's true durations are known.
CLIPS = [
    (
        "LJ001-0001",
        "Printing, in the only sense with which we are at present concerned.",
        "Printing, in the only sense with which we are at present concerned.",
        150,
        70,
    ),
    ("LJ001-0002", "in being comparatively modern.", "in being comparatively modern.", 200, 40),
    ("LJ002-0003", "It cost 5 shillings in 1820.", "It cost five shillings in eighteen twenty.", 190, 85),
]


def _write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE, channels: int = 1, width: int = 2) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(samples.astype("<i2" if width == 2 else "u1").tobytes())


def _make_dataset(folder: Path, clips: list[tuple[str, str, str, int, int]]) -> dict[str, np.ndarray]:
    """An LJSpeech-1.1-style folder: metadata.csv and wavs/<id>.wav spoken by espeak. Returns id -> int16 samples."""
    (folder / "wavs").mkdir(parents=True)
    lines, written = [], {}
    for key, raw, normalized, rate, pitch in clips:
        lines.append(f"{key}|{raw}|{normalized}")
        samples = np.round(synthesize(normalized, rate=rate, pitch=pitch).waveform.numpy() * 32768.0)
        written[key] = np.clip(samples, -32768, 32767).astype(np.int16)
        _write_wav(folder / "wavs" / f"{key}.wav", written[key])
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """``LJSpeech-1.1.tar.bz2`` holding ``LJSpeech-1.1/{metadata.csv, wavs/}``, as the real archive does."""
    folder = tmp_path_factory.mktemp("remote")
    written = _make_dataset(folder / "LJSpeech-1.1", CLIPS)
    path = folder / "LJSpeech-1.1.tar.bz2"
    with tarfile.open(path, "w:bz2") as tf:
        tf.add(folder / "LJSpeech-1.1", arcname="LJSpeech-1.1")
    return path, written


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archive: tuple[Path, dict[str, np.ndarray]]) -> Path:
    """An empty cache through ``REPROBOOK_DATA``, no consent, and the registry pointing at the local archive."""
    path, _ = archive
    folder = tmp_path / "cache"
    monkeypatch.setenv(DATA_ENV, str(folder))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    entry = Resource(path.as_uri(), "LJSpeech-1.1.tar.bz2", sha256_file(path), path.stat().st_size)
    monkeypatch.setitem(download.REGISTRY, "ljspeech", (entry,))
    return folder


def test_registry_pins_the_published_archive() -> None:
    (resource,) = download.REGISTRY["ljspeech"]
    assert resource.url == "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
    assert resource.sha256 == "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
    assert resource.size == 2_748_572_632


def test_refuses_to_download_without_consent(cache: Path) -> None:
    with pytest.raises(DownloadNotAllowedError, match=rf"'ljspeech'.*download=True.*{ALLOW_ENV}=1"):
        build_ljspeech_corpus()
    assert not cache.exists() or not any(cache.rglob("*.*"))


def test_corpus_from_the_archive(cache: Path, archive: tuple[Path, dict[str, np.ndarray]]) -> None:
    _, written = archive
    built = build_ljspeech_corpus(download=True)
    assert (cache / "ljspeech" / "LJSpeech-1.1" / "LJSpeech-1.1" / "metadata.csv").is_file()
    assert len(built) == len(CLIPS) and built.vocab[:2] == ["<pad>", PAUSE]
    for example, (key, _, normalized, rate, pitch) in zip(built.examples, CLIPS):
        assert example.text == normalized  # the normalised transcript, not the raw one
        reference = synthesize(normalized)  # espeak's default rendering gives the phonemes
        assert example.phonemes == reference.phonemes
        assert [built.vocab[i] for i in example.phoneme_ids] == example.phonemes
        torch.testing.assert_close(example.waveform, torch.from_numpy(written[key] / 32768.0).float())
        num_frames = frame_count(example.waveform.numel())
        assert example.mel.shape == (N_MELS, num_frames)
        assert torch.equal(example.mel, log_mel(example.waveform))
        assert torch.equal(example.pitch, frame_pitch(example.waveform))
        assert torch.equal(example.energy, frame_energy(example.waveform))
        assert example.durations.dtype == torch.int64 and example.durations.shape == (len(example.phonemes),)
        assert int(example.durations.sum()) == num_frames and bool((example.durations >= 0).all())
        # The "recording" is espeak at another rate and pitch, so its true durations are known.
        spoken = synthesize(normalized, rate=rate, pitch=pitch)
        assert spoken.phonemes == example.phonemes
        truth = durations_in_frames(spoken, num_frames)
        assert (example.durations - truth).abs().double().mean() < 1.0


def test_corpus_is_cached_and_needs_neither_archive_nor_espeak_again(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = build_ljspeech_corpus(num_utterances=2, download=True)
    (path,) = (cache / "speech").glob("ljspeech-2-*.pt")
    for item in sorted((cache / "ljspeech").rglob("*"), reverse=True):  # the data is gone
        item.unlink() if item.is_file() else item.rmdir()

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached corpus should have been loaded, not rebuilt")

    monkeypatch.setattr(ljspeech_module, "synthesize", fail)
    again = build_ljspeech_corpus(num_utterances=2)
    assert again.vocab == built.vocab and len(again) == 2
    for x, y in zip(built.examples, again.examples):
        assert (x.text, x.phonemes, x.rate, x.pitch_setting) == (y.text, y.phonemes, y.rate, y.pitch_setting)
        for name in ("phoneme_ids", "durations", "mel", "pitch", "energy", "waveform"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
    assert path.exists()
    with pytest.raises(DownloadNotAllowedError):  # other arguments, other file: the archive is needed again
        build_ljspeech_corpus(num_utterances=1)


def test_read_ljspeech_from_a_folder(tmp_path: Path) -> None:
    written = _make_dataset(tmp_path / "LJSpeech-1.1", CLIPS[:2])
    for root in (tmp_path, tmp_path / "LJSpeech-1.1"):  # the archive's folder or the dataset folder itself
        recordings = read_ljspeech(root)
        assert [r.id for r in recordings] == ["LJ001-0001", "LJ001-0002"]
        assert all(isinstance(r, Recording) and r.waveform.dtype == torch.float32 for r in recordings)
        assert recordings[1].text == CLIPS[1][2]
        np.testing.assert_array_equal(recordings[0].waveform.numpy() * 32768.0, written["LJ001-0001"])
    assert [r.id for r in read_ljspeech(tmp_path, num_utterances=1)] == ["LJ001-0001"]


def test_unspeakable_texts_are_skipped_with_a_warning(tmp_path: Path) -> None:
    _make_dataset(tmp_path / "data", CLIPS[1:2])
    with open(tmp_path / "data" / "metadata.csv", "a", encoding="utf-8") as handle:
        handle.write("LJ009-0009|...|...\n")
    _write_wav(tmp_path / "data" / "wavs" / "LJ009-0009.wav", np.zeros(4000))
    with pytest.warns(UserWarning, match=r"skipped 1 .*LJ009-0009"):
        built = build_ljspeech_corpus(root=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert [e.text for e in built.examples] == [CLIPS[1][2]]


def _one_clip(folder: Path, samples: np.ndarray, **format: int) -> Path:
    (folder / "wavs").mkdir(parents=True)
    (folder / "metadata.csv").write_text("LJ001-0001|hello world|hello world\n", encoding="utf-8")
    _write_wav(folder / "wavs" / "LJ001-0001.wav", samples, **format)
    return folder


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda d: _one_clip(d, np.zeros(4000), rate=16000), ValueError, r"16000 Hz.*expected 22050 Hz"),
        (lambda d: _one_clip(d, np.zeros(8000), channels=2), ValueError, r"2 channel\(s\).*mono"),
        (lambda d: _one_clip(d, np.full(4000, 128), width=1), ValueError, r"8-bit.*16-bit"),
        (lambda d: d, FileNotFoundError, r"no metadata\.csv"),
    ],
    ids=["sample-rate", "stereo", "8-bit", "no-metadata"],
)
def test_bad_datasets_give_clear_errors(
    tmp_path: Path, make: Callable[[Path], Path], error: type[Exception], match: str
) -> None:
    root = make(tmp_path / "data")
    with pytest.raises(error, match=match):
        read_ljspeech(root)
    with pytest.raises(error, match=match):
        build_ljspeech_corpus(root=root, cache_dir=tmp_path / "cache")


def test_bad_metadata_and_arguments(tmp_path: Path) -> None:
    root = _one_clip(tmp_path / "data", np.zeros(4000))
    with pytest.raises(ValueError, match="num_utterances"):
        read_ljspeech(root, num_utterances=0)
    with pytest.raises(ValueError, match=r"num_utterances=2 is more than the 1 clips"):
        read_ljspeech(root, num_utterances=2)
    with pytest.raises(ValueError, match="num_utterances"):
        build_ljspeech_corpus(num_utterances=0, root=root)
    (root / "metadata.csv").write_text("LJ001-0001|hello world|hello world\nLJ001-0002|no normalized text\n")
    with pytest.raises(ValueError, match=r"line 2 has 2 '\|'-separated fields"):
        read_ljspeech(root)
    (root / "metadata.csv").write_text("LJ001-0001|a|a\nLJ001-0002|b|b\n")
    with pytest.raises(FileNotFoundError, match=r"LJ001-0002\.wav is missing"):
        read_ljspeech(root)
    (root / "wavs" / "LJ001-0002.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match="LJ001-0002.wav is not a PCM WAV"):
        read_ljspeech(root)
