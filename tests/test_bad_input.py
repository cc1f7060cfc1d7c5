"""The one-line repros of issue #15 that live in the shared layers (data, nn, widgets): each now raises a clear
error naming the argument, refuses before allocating, or rebuilds a corrupt cache; none hangs or downloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprobook.data import download, images, kg
from reprobook.data.download import ALLOW_ENV, REGISTRY, DownloadNotAllowedError, Resource, fetch, fetch_dataset
from reprobook.data.speech import corpus
from reprobook.nn.transformer import MultiHeadAttention, Seq2SeqTransformer, TransformerSizes
from reprobook.widgets import audio_grid


def test_huge_requests_are_refused_before_allocating(monkeypatch):
    monkeypatch.setenv("REPROBOOK_MAX_BYTES", str(8 * 2**30))
    photos = [torch.rand(3, 16, 16)]
    with pytest.raises(ValueError, match=r"num_crops=1000000000 would need .* GB, more than half"):
        images.random_crops(photos, 2, 10**9, 0)
    with pytest.raises(ValueError, match="num_families=100000000 is out of range"):
        kg.family_graph(10**8)


def test_a_cache_path_cannot_escape_the_cache_folder(tmp_path):
    for name in ("../../x", "/etc/passwd", "."):
        with pytest.raises(ValueError, match="inside the cache folder"):
            fetch("https://example.invalid/x", name, None, tmp_path)


def test_a_corrupt_archive_is_reported_as_corrupt_not_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toy.zip").write_bytes(b"not a zip")
    monkeypatch.setitem(REGISTRY, "toy", (Resource("https://example.invalid/toy.zip", "toy.zip", "0" * 64, 9),))
    with pytest.raises(DownloadNotAllowedError, match=r"has corrupt file\(s\) \['toy.zip'\] in the cache"):
        fetch_dataset("toy", cache=tmp_path)
    assert download.download_allowed() is False


def test_a_corrupt_speech_cache_names_the_file_and_is_rebuilt(tmp_path, monkeypatch):
    garbage = tmp_path / "garbage" / "corpus.pt"
    garbage.parent.mkdir()
    garbage.write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match=r"corpus.pt is unreadable .*delete it to rebuild it") as error:
        corpus.load_cached(garbage)
    assert "weights_only=False" not in str(error.value), "never advise the unsafe load"
    built = corpus.build_corpus(2, cache_dir=tmp_path / "cache")
    cached = next((tmp_path / "cache").rglob("*.pt"))
    cached.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="rebuilding it"):
        again = corpus.build_corpus(2, cache_dir=tmp_path / "cache")
    assert [e.text for e in again.examples] == [e.text for e in built.examples]


def test_attention_and_embeddings_name_bad_sizes_and_ids():
    with pytest.raises(ValueError, match="num_heads=0 is out of range"):
        MultiHeadAttention(8, 0)
    model = Seq2SeqTransformer(TransformerSizes(src_vocab=5, tgt_vocab=6, d_model=8, num_heads=2))
    src, tgt = torch.tensor([[1, 2, 9]]), torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match=r"token id 9 is outside the vocabulary \(ids 0..4\)"):
        model(src, tgt)
    with pytest.raises(ValueError, match="token ids must be a long tensor"):
        model(src.float(), tgt)


def test_audio_grid_names_a_zero_sample_rate():
    with pytest.raises(ValueError, match="sample_rate=0 is out of range"):
        audio_grid([("a", np.zeros(10))], 0)


def test_image_metrics_refuse_the_wrong_scale_and_integer_luma():
    from reprobook.metrics import psnr, rgb_to_y

    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"outside \[0, data_range=1\]: pass the images' data_range"):
        psnr(x * 255, x.clamp(0.1, 0.9) * 255)
    assert torch.isfinite(psnr(x * 255, x.clamp(0.1, 0.9) * 255, data_range=255))
    with pytest.raises(ValueError, match="image must hold floats"):
        rgb_to_y(torch.zeros(3, 4, 4, dtype=torch.uint8))


def test_issue_15_repros_that_remained():
    import torch

    from reprobook import irn, mat
    from reprobook.data.speech.features import log_mel
    from reprobook.fastspeech2.variance import durations_to_mel2ph

    with pytest.raises(ValueError, match="waveform must hold floats"):
        log_mel(torch.zeros(16000, dtype=torch.int16))
    with pytest.raises(ValueError, match="durations"):
        durations_to_mel2ph(torch.tensor([[10**11]]))
    with pytest.raises(ValueError, match="num_draws"):
        irn.evaluate(irn.Bicubic(2), irn.load_data(irn.IRNConfig()), num_draws=10**9)
    with pytest.raises(ValueError, match="drop_branch"):
        mat.matched_configs(mat.MATConfig(drop_branch=0.0))


def test_mcd_refuses_a_transposed_mel():
    import torch

    from reprobook.fastspeech2.evaluate import mel_cepstral_distortion

    mel = torch.randn(50, 80)
    assert mel_cepstral_distortion(mel, mel)[0] == 0.0
    with pytest.raises(ValueError, match=r"reference must be a non-empty \(T, 80\) log-mel"):
        mel_cepstral_distortion(mel, mel.T)
