"""Level 3: the phrase triples, the decoder states behind the fused loss, sampling, the loop loss and a tiny run."""

from __future__ import annotations

import pytest
import torch

from reprobook.dual.sequence import (
    SequenceConfig,
    SequenceTranslators,
    decoder_states,
    dual_loop_loss,
    evaluate_sequences,
    load_phrases,
    sample_translations,
    sentence_log_prob,
    train_sequence,
)

TINY = dict(corpus_size=200, parallel_size=30, mono_size=40, d_model=32, ffn_dim=64, batch_size=8, eval_every=5)


@pytest.fixture(scope="module")
def data():
    return load_phrases(SequenceConfig(**TINY))


def test_triples_share_one_meaning_and_the_splits_are_disjoint(data) -> None:
    assert len(data.parallel) == 30 and all(len(data.mono[lang]) == 40 for lang in ("en", "fr", "es"))
    assert data.parallel[0]["en"].split()[-1] in {
        "cats",
        "dogs",
        "books",
        "birds",
        "trees",
        "horses",
        "trains",
        "boats",
    }
    seen = {t["en"] for t in data.parallel}
    assert not seen & set(data.mono["en"]) and not seen & {t["en"] for t in data.test}


def test_decoder_states_are_decode_without_the_projection(data) -> None:
    torch.manual_seed(0)
    models = SequenceTranslators(SequenceConfig(**TINY), data).eval()
    model = models["en", "fr"]
    src, tgt = data.encode("en", ["I see 97 dogs"]), data.encode("fr", [data.parallel[0]["fr"]])
    logits = model(src, tgt[:, :-1])
    states = decoder_states(model, src, tgt[:, :-1])
    torch.testing.assert_close(states @ model.tgt_embed.weight.T, logits)
    expected = -torch.nn.functional.cross_entropy(logits[0], tgt[0, 1:], reduction="sum")
    torch.testing.assert_close(sentence_log_prob(model, src, tgt), expected[None])


def test_sampling_ends_every_sentence(data) -> None:
    torch.manual_seed(0)
    models = SequenceTranslators(SequenceConfig(**TINY), data)
    vocab = data.vocabs["fr"]
    out = sample_translations(models["en", "fr"], data.encode("en", data.mono["en"][:5]), vocab.bos_id,
                              vocab.eos_id, torch.Generator().manual_seed(0))  # fmt: skip
    assert (out[:, 0] == vocab.bos_id).all() and ((out == vocab.eos_id).sum(1) >= 1).all()


def test_loop_loss_trains_every_map_on_the_loop(data) -> None:
    torch.manual_seed(0)
    models = SequenceTranslators(SequenceConfig(**TINY), data)
    loss, reward = dual_loop_loss(models, data, data.mono["en"][:4], ("en", "fr", "es"), 2, torch.Generator())
    loss.backward()
    for direction in (("en", "fr"), ("fr", "es"), ("es", "en")):
        assert models[direction].tgt_embed.weight.grad is not None
    assert models["fr", "en"].tgt_embed.weight.grad is None and reward < 0
    with pytest.raises(ValueError, match="language='de' is not valid"):
        dual_loop_loss(models, data, data.mono["en"][:2], ("en", "de"), 2, torch.Generator())


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        SequenceConfig(corpus_size=100, parallel_size=50, mono_size=20)
    with pytest.raises(ValueError, match="num_samples=1 is out of range"):
        SequenceConfig(num_samples=1)
    with pytest.raises(ValueError, match="method='backtranslation' is not valid"):
        SequenceConfig(method="backtranslation")


@pytest.mark.slow
def test_tiny_run_learns_and_continues_from_a_warm_start(data) -> None:
    config = SequenceConfig(**TINY, warmup_steps=40, num_steps=44, method="multistep")
    warm = train_sequence(SequenceConfig(**TINY, warmup_steps=40, num_steps=40, method="supervised"), data,
                          progress=False)  # fmt: skip
    losses = warm.history["supervised"]
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])
    result = train_sequence(config, data, progress=False, start=warm)
    assert result.history.num_steps == 44 and "reward" in result.history.metrics
    scores = evaluate_sequences(result.model, data, "parallel")
    assert scores.row()["method"] == "" and 0 <= scores.bleu <= 100


@pytest.mark.parametrize("profile", ["smoke", "book", "full"])
def test_profile_defaults_are_valid(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every profile's default sequence config passes its own validation (the sizes fit the corpus)."""
    monkeypatch.setenv("REPROBOOK_PROFILE", profile)
    SequenceConfig()
