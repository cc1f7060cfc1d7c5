"""UWSpeech: the quantiser, XL-VAE's CTC term, the pipeline's shapes, tiny overfits, scoring and bad input."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from reprobook.data.speech import SAMPLE_RATE, build_corpus
from reprobook.uwspeech import (
    DirectTranslator,
    UnitModel,
    UnitTranslator,
    UWSpeechConfig,
    VectorQuantizer,
    bleu,
    build_model,
    evaluate,
    train,
    train_recognizer,
    unit_purity,
    word_error_rate,
)
from reprobook.uwspeech.data import make_data, pad_mels, speech_features, strip_stress
from reprobook.uwspeech.evaluate import recognizer_scores
from reprobook.uwspeech.model import DOWNSAMPLE, FIRST_CODE, downsampled_lengths
from reprobook.uwspeech.train import unit_tokens, written_code_map

LANGS = ("es", "en", "de", "fr", "it")


@pytest.fixture(scope="module")
def data():
    corpora = {lang: build_corpus(14, lang, 3) for lang in LANGS}
    return make_data(corpora, "es", "en", ("de", "fr", "it"), num_asr=4, num_valid=2, num_test=2)


def tiny_config(**changes) -> UWSpeechConfig:
    sizes = dict(num_utterances=14, num_asr=4, num_valid=2, num_test=2, unit_width=16, code_dim=8, d_model=16,
                 layers=1, unit_steps=3, translator_steps=3, recognizer_steps=3, batch_size=4)  # fmt: skip
    return UWSpeechConfig(**{**sizes, **changes})


def test_quantizer_returns_nearest_codes_and_straight_through_gradients() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(5, 3).eval()
    z = torch.randn(11, 3, requires_grad=True)
    codes, quantized, commitment = vq(z)
    assert torch.equal(codes, torch.cdist(z, vq.codebook).argmin(-1))
    # quantized = z + (code - z).detach(): the code itself, up to one float32 rounding at |z| ~ 1 (1.2e-7)
    assert torch.allclose(quantized, vq.codebook[codes], rtol=0, atol=1e-6)
    assert torch.allclose(commitment, (z - vq.codebook[codes]).pow(2).sum(-1))
    weights = torch.randn(11, 3)
    (quantized * weights).sum().backward()
    assert torch.allclose(z.grad, weights)  # d quantized / d z = identity: the straight-through estimator


def test_ema_update_moves_codes_to_the_mean_of_their_frames() -> None:
    vq = VectorQuantizer(2, 1, decay=0.0).train()
    vq.initialised.fill_(True)
    vq.codebook.copy_(torch.tensor([[0.0], [10.0]]))
    vq.ema_sum.copy_(vq.codebook)
    vq(torch.tensor([[1.0], [2.0], [9.0], [12.0]]))
    assert torch.allclose(vq.codebook.flatten(), torch.tensor([1.5, 10.5]))


def test_dead_code_restart_revives_unused_codes() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 2, decay=0.5, restart_below=0.5).train()
    vq.initialised.fill_(True)
    vq.codebook.copy_(torch.cat([torch.zeros(1, 2), torch.full((7, 2), 100.0)]))
    vq.ema_sum.copy_(vq.codebook)
    z = torch.randn(64, 2) * 0.1
    for _ in range(3):
        vq(z)
    assert vq.restarts > 0
    assert (vq.codebook.abs().max(-1).values < 5).all()  # every dead code now sits among the frames
    codes, _, _ = vq.eval()(z)
    assert len(codes.unique()) > 1


def test_bad_codebook_and_languages_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="codebook_size"):
        VectorQuantizer(1, 4)
    with pytest.raises(ValueError, match="codebook_size"):
        tiny_config(codebook_size=1)
    with pytest.raises(ValueError, match="source"):
        tiny_config(source="xx")
    with pytest.raises(ValueError, match="written"):
        tiny_config(written=("de", "zz"))
    with pytest.raises(ValueError, match="system"):
        tiny_config(system="cascade")
    with pytest.raises(ValueError, match="num_utterances"):
        tiny_config(num_utterances=8)


def test_empty_utterances_and_sample_rates_are_refused(data) -> None:
    corpora = {lang: build_corpus(14, lang, 3) for lang in LANGS}
    broken = corpora["de"].examples[0]
    corpora["de"].examples[0] = replace(broken, mel=broken.mel[:, :2], phonemes=[])
    with pytest.raises(ValueError, match="empty utterances"):
        make_data(corpora, "es", "en", ("de", "fr", "it"), 4, 2, 2)
    with pytest.raises(ValueError, match="must all differ"):
        make_data(corpora, "es", "en", ("es",), 4, 2, 2)
    with pytest.raises(ValueError, match="sample_rate=16000"):
        speech_features(torch.zeros(16_000), 16_000, data)
    assert speech_features(torch.zeros(SAMPLE_RATE), SAMPLE_RATE, data).shape[0] == 80


def test_phoneme_inventory_is_shared_without_stress(data) -> None:
    assert strip_stress("'aI") == "aI" and strip_stress(",i:") == "i:" and strip_stress("_") == "_"
    assert data.phonemes[0] == "<blank>" and not any(p.startswith(("'", ",")) for p in data.phonemes)
    codes = written_code_map(data)
    assert sorted(codes.values()) == list(range(len(codes)))


def brute_force_ctc(log_probs: torch.Tensor, target: list[int]) -> torch.Tensor:
    """-log sum over every alignment path that collapses to ``target`` (blank 0), by enumeration."""
    steps, classes = log_probs.shape
    total = []
    for path in itertools.product(range(classes), repeat=steps):
        collapsed = [c for c, _ in itertools.groupby(path) if c != 0]
        if collapsed == target:
            total.append(sum(log_probs[t, c] for t, c in enumerate(path)))
    return -torch.logsumexp(torch.stack(total), 0)


def test_ctc_term_over_codebook_distances_equals_brute_force() -> None:
    torch.manual_seed(0)
    units = UnitModel(3, 2, 8, temperature=0.7)
    units.quantizer.codebook.copy_(torch.randn(3, 2))
    z = torch.randn(1, 4, 2)
    log_probs = units.ctc_log_probs(z)  # blank + 3 codes
    codes = torch.cat([units.blank[None], units.quantizer.codebook])
    assert torch.allclose(log_probs, F.log_softmax(-torch.cdist(z[0], codes).pow(2) / 0.7, -1)[None], atol=1e-4)
    target = [2, 2, 1]
    ours = F.ctc_loss(log_probs.transpose(0, 1), torch.tensor([target]), torch.tensor([4]), torch.tensor([3]),
                      reduction="sum")  # fmt: skip
    assert torch.allclose(ours, brute_force_ctc(log_probs[0].detach(), target), atol=1e-4)


def test_pipeline_shapes_end_to_end(data) -> None:
    config = tiny_config()
    model = build_model(config, data)
    mel, lengths = pad_mels(data.split("es", "test").mels, DOWNSAMPLE)
    codes = model.units.tokens(mel, lengths)
    assert [len(c) for c in codes] == downsampled_lengths(lengths).tolist()
    assert model.units.quantizer.size >= len(written_code_map(data))
    outputs = model.eval().translate(mel, lengths)
    assert len(outputs) == len(mel) and all(o.ndim == 2 and o.shape[1] == 80 and o.shape[0] % 4 == 0 for o in outputs)
    tokens = unit_tokens(model.units, data.split("en", "train").mels[:2])
    assert all(t[0] == 1 and t[-1] == 2 and (t[1:-1] >= FIRST_CODE).all() for t in tokens)
    direct = build_model(replace(config, system="direct"), data).eval()
    assert isinstance(direct, DirectTranslator)
    assert all(o.shape[1] == 80 for o in direct.translate(mel, lengths))


def overfits(losses: list[float]) -> bool:
    return sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5


def test_tiny_overfit_of_each_part(data) -> None:
    torch.manual_seed(0)
    mel, lengths = pad_mels(data.split("en", "train").mels[:4], DOWNSAMPLE)
    w = data.split("de", "train")
    w_mel, w_len = pad_mels(w.mels[:4], DOWNSAMPLE)
    codes = written_code_map(data)
    targets = [torch.tensor([codes[int(p)] + 1 for p in ids]) for ids in w.phoneme_ids[:4]]
    written = (w_mel, w_len, torch.nn.utils.rnn.pad_sequence(targets, batch_first=True),
               torch.tensor([len(t) for t in targets]))  # fmt: skip
    units = UnitModel(len(codes), 16, 32).train()
    translator = UnitTranslator(len(codes), 32, 4, 1, 0.0).train()
    direct = DirectTranslator(32, 4, 1, 0.0).train()
    src, src_len = pad_mels(data.split("es", "train").mels[:4], DOWNSAMPLE)
    tokens = torch.nn.utils.rnn.pad_sequence(unit_tokens(units, data.split("en", "train").mels[:4]), batch_first=True)
    units.train()
    parts = {
        "units": (units, lambda: units.losses(mel, lengths, written, 1.0, 0.25)),
        "translator": (translator, lambda: translator.loss(src, src_len, tokens)),
        "direct": (direct, lambda: direct.loss(src, src_len, mel, lengths)),
    }
    for name, (module, loss_fn) in parts.items():
        optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
        losses = []
        for _ in range(25):
            loss = loss_fn()["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert overfits(losses), f"{name} did not overfit: {losses[:3]} ... {losses[-3:]}"


def test_scores_and_purity(data) -> None:
    assert bleu(["i have two cats"], ["I have two cats"]) == pytest.approx(100.0)
    assert word_error_rate(["i have cats"], ["I have two cats"]) == pytest.approx(25.0)
    assert word_error_rate(["i see eighty five cats"], ["I see eighty-five cats"]) == 0.0
    model = build_model(tiny_config(), data)
    found = unit_purity(model.units, data.split("en", "test"))
    assert 0 < found["purity"] <= 1 and 0 <= found["nmi"] <= 1 + 1e-6 and found["perplexity"] >= 1


def test_train_and_evaluate_run_on_tiny_data(data) -> None:
    config = tiny_config()
    result = train(config, data, progress=False)
    assert result.unit_history is not None and result.history.num_steps == config.unit_steps + config.translator_steps
    scores = evaluate(result.model, data, recognizer=train_recognizer(data, 2, progress=False))
    assert 0 <= scores.bleu <= 100 and math.isfinite(scores.purity) and set(scores.row()) >= {"method", "ASR-BLEU"}
    with pytest.raises(ValueError, match="load the data with this config"):
        train(replace(config, source="fr", written=("de", "it")), data, progress=False)


@pytest.mark.slow
def test_recognizer_reads_ground_truth_speech() -> None:
    corpora = {lang: build_corpus(48, lang, 5) for lang in LANGS}
    data = make_data(corpora, "es", "en", ("de", "fr", "it"), num_asr=40, num_valid=2, num_test=4)
    recognizer = train_recognizer(data, 400, progress=False)
    # scored on the speech it trained on: the point is that the recogniser and its decoding work at all
    data.speech["en"]["test"] = data.speech["en"]["asr"]
    found = recognizer_scores(data, recognizer=recognizer)
    assert found.bleu > 50


def test_resynthesis_keeps_each_length_and_is_what_the_units_ceiling_scores(data) -> None:
    units = build_model(tiny_config(), data).units.eval()
    speech = data.split("en", "test")
    mel, lengths = pad_mels(speech.mels, DOWNSAMPLE)
    with torch.no_grad():
        out = units.resynthesise(mel, lengths)
        first = units.invert(units.tokens(mel, lengths)[0][None])[0, : int(lengths[0])]
    assert [tuple(m.shape) for m in out] == [(int(n), 80) for n in lengths]
    assert torch.equal(out[0], first)
    recognizer = train_recognizer(data, 2, progress=False)
    found = recognizer_scores(data, recognizer=recognizer, units=units, label="round trip")
    assert found.label == "round trip"
    assert found.hypotheses == tuple(recognizer.transcribe([m.T for m in out]))
    assert found.hypotheses != () and 0 <= found.bleu <= 100
