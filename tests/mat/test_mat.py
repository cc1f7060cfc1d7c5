"""MAT: multi-branch attention, drop-branch, proximal initialisation, configs, training, evaluation, bad inputs."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from reprobook.mat import (
    MATConfig,
    MATResult,
    MATScores,
    MultiBranchAttention,
    PairedDifference,
    attention_maps,
    build_model,
    evaluate,
    load_data,
    loss_on,
    mat_transformer,
    matched_configs,
    matched_transformer,
    paired_difference,
    proximal_init,
    train,
    train_seeds,
    translate,
)
from reprobook.nn import count_parameters
from reprobook.nn.transformer import MultiHeadAttention, Seq2SeqTransformer, TransformerSizes

SIZES = TransformerSizes(src_vocab=13, tgt_vocab=11, d_model=16, num_heads=2, encoder_ff=32, dropout=0.0)


def test_one_branch_equals_standard_attention() -> None:
    torch.manual_seed(0)
    mha, mba = MultiHeadAttention(16, 4), MultiBranchAttention(16, 4, num_branches=1, drop_branch=0.0)
    mba.branches[0].load_state_dict(mha.state_dict())
    q, kv = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 5:] = True
    torch.testing.assert_close(mba(q, kv, kv, padding), mha(q, kv, kv, padding))
    torch.testing.assert_close(mba(q, q, q, causal=True), mha(q, q, q, causal=True))


def test_branches_are_averaged_with_one_over_n() -> None:
    torch.manual_seed(0)
    mba = MultiBranchAttention(16, 4, num_branches=3).eval()
    x = torch.randn(2, 5, 16)
    expected = sum(b(x, x, x) for b in mba.branches) / 3
    torch.testing.assert_close(mba(x, x, x), expected)
    code = MultiBranchAttention(16, 4, num_branches=3, scaling="code").eval()
    code.load_state_dict(mba.state_dict())
    torch.testing.assert_close(code(x, x, x), expected / 3)  # the official merge_branches: 1/N^2


def test_drop_branch_keeps_the_expectation_and_uses_all_branches_at_inference() -> None:
    torch.manual_seed(0)
    mba = MultiBranchAttention(8, 2, num_branches=3, drop_branch=0.4)
    x = torch.randn(1, 4, 8)
    with torch.no_grad():
        mean = torch.stack([mba.train()(x, x, x) for _ in range(1500)]).mean(0)
        gates = torch.stack([mba.gates() for _ in range(1500)])
        full = mba.eval()(x, x, x)
    assert (torch.isclose(gates, torch.tensor(0.0)) | torch.isclose(gates, torch.tensor(1 / (3 * 0.6)))).all()
    assert abs((gates == 0).float().mean().item() - 0.4) < 0.04
    torch.testing.assert_close(mean, full, atol=0.05, rtol=0.0)
    assert torch.equal(mba.eval().gates(), torch.full((3,), 1 / 3))
    mba.train()
    outputs = {tuple(mba(x, x, x).flatten().tolist()) for _ in range(20)}
    assert len(outputs) > 1, "training outputs must vary with the sampled branches"


def test_proximal_init_reproduces_the_pretrained_model_exactly() -> None:
    torch.manual_seed(0)
    pretrained = Seq2SeqTransformer(SIZES).eval()
    mat = proximal_init(pretrained, mat_transformer(SIZES, num_branches=3, drop_branch=0.3)).eval()
    src, tgt = torch.randint(4, 13, (3, 6)), torch.randint(4, 11, (3, 5))
    torch.testing.assert_close(mat(src, tgt), pretrained(src, tgt), atol=1e-6, rtol=1e-5)
    assert count_parameters(mat) > count_parameters(pretrained)
    code = proximal_init(pretrained, mat_transformer(SIZES, 3, 0.3, scaling="code")).eval()
    assert not torch.allclose(code(src, tgt), pretrained(src, tgt), atol=1e-3), "1/N^2 scaling changes the function"


def test_proximal_init_needs_matching_sizes() -> None:
    other = TransformerSizes(src_vocab=13, tgt_vocab=11, d_model=16, num_heads=2, encoder_ff=64, dropout=0.0)
    with pytest.raises(ValueError, match="differ"):
        proximal_init(Seq2SeqTransformer(SIZES), mat_transformer(other, 2))


def test_attention_maps_have_one_map_per_branch() -> None:
    model = mat_transformer(SIZES, num_branches=2)
    maps = attention_maps(model, torch.randint(4, 13, (1, 6)), torch.randint(4, 11, (1, 4)))
    assert maps["encoder.0.self_attn"].shape == (2, 1, 2, 6, 6)
    assert maps["decoder.1.cross_attn"].shape == (2, 1, 2, 4, 6)
    torch.testing.assert_close(maps["decoder.0.self_attn"].sum(-1), torch.ones(2, 1, 2, 4))
    assert model.training, "attention_maps gives the model back in the mode it had"


def test_matched_configs_have_nearly_equal_parameter_counts() -> None:
    base = MATConfig(num_steps=10, corpus_size=200, src_level="word")
    data = load_data(base)
    counts = {name: count_parameters(build_model(c, data)) for name, c in matched_configs(base).items()}
    assert len(set(list(counts.values())[1:])) == 1
    assert abs(counts["Transformer"] - counts["MAT, rho=0"]) < 0.01 * counts["Transformer"]
    assert matched_configs(base)["Transformer"] == matched_transformer(base)
    assert [c.label for c in matched_configs(base).values()] == [
        "Transformer",
        "MAT N_a=2 rho=0",
        "MAT N_a=2 rho=0.3",
        "MAT N_a=2 rho=0.3 + proximal init",
    ]


def test_tiny_overfit_and_translate() -> None:
    torch.manual_seed(0)
    config = MATConfig(num_steps=10, corpus_size=200, src_level="word", d_model=16, ffn_dim=32, dropout=0.0)
    data = load_data(config)
    model = build_model(config, data)
    src, tgt = data.encode(data.train[:4])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(
            model(src, tgt[:, :-1]).flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=0
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert len(translate(model, data, [data.train[0][0]], beam_size=2)) == 1


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="rho"):
        MultiBranchAttention(8, 2, num_branches=2, drop_branch=1.0)
    with pytest.raises(ValueError, match="rho"):
        MultiBranchAttention(8, 2, num_branches=2, drop_branch=-0.1)
    with pytest.raises(ValueError, match="N_a"):
        MultiBranchAttention(8, 2, num_branches=0)
    with pytest.raises(ValueError, match="num_branches"):
        MATConfig(num_branches=0, num_steps=10)
    with pytest.raises(ValueError, match="key and value"):
        MultiBranchAttention(8, 2, 2)(torch.randn(1, 3, 8), torch.randn(1, 4, 8), torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match="scaling"):
        MultiBranchAttention(8, 2, 2, scaling="fairseq")
    config = MATConfig(num_steps=10, corpus_size=200, src_level="word")
    data = load_data(config)
    with pytest.raises(ValueError, match="lacks.*zwanzig"):
        translate(build_model(config, data), data, ["j'ai zwanzig chats"])
    with pytest.raises(TypeError, match="list"):
        translate(build_model(config, data), data, "j'ai deux chats")  # type: ignore[arg-type]


TINY = dict(corpus_size=200, d_model=16, num_heads=2, ffn_dim=32, warmup=2, batch_size=16, eval_every=2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_branches", 1.5),
        ("drop_branch", math.nan),
        ("drop_branch", 1.0),
        ("proximal_steps", -1),
        ("proximal_steps", 10),
        ("scaling", "fairseq"),
        ("d_model", 0),
        ("num_heads", 3),
        ("layers", 0),
        ("ffn_dim", 0),
        ("decoder_ffn_dim", 0),
        ("dropout", 1.0),
        ("dropout", math.nan),
        ("label_smoothing", -0.1),
        ("lr", math.inf),
        ("lr", 0.0),
        ("warmup", 0),
        ("batch_size", 0),
        ("num_steps", 0),
        ("seed", -1),
        ("seed", True),
        ("corpus", "wmt14"),
        ("vocab_min_freq", 0),
        ("src_lang", "xx"),
        ("tgt_lang", "fr"),
        ("src_level", "byte"),
        ("tgt_level", "byte"),
        ("corpus_size", 5),
        ("train_size", 0),
        ("corpus_seed", -1),
        ("eval_every", 0),
        ("checkpoint", "middle"),
    ],
)
def test_config_refuses_every_bad_field_by_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        MATConfig(**{"num_steps": 10, field: value})  # type: ignore[arg-type]


def test_proximal_init_needs_branches() -> None:
    with pytest.raises(ValueError, match="num_branches >= 2"):
        MATConfig(num_branches=1, num_steps=10, proximal_steps=5)


def test_train_with_proximal_init_runs_two_phases_on_one_history() -> None:
    config = MATConfig(num_steps=6, proximal_steps=3, **TINY)
    data = load_data(config)
    result = train(config, data, progress=False)
    assert isinstance(result, MATResult) and result.config is config
    assert isinstance(result.model.encoder[0].self_attn, MultiBranchAttention)
    history = result.history
    assert history.num_steps == 6 and history.steps == [1, 2, 3, 4, 5, 6] and len(history["loss"]) == 6
    steps, train_losses = history.curve("train_loss")
    assert steps == [2.0, 3.0, 5.0, 6.0]  # every eval_every updates of each phase, and after each phase
    assert len(history.curve("valid_loss")[1]) == 4
    metrics = result.metrics
    assert set(metrics) == {
        "bleu",
        "exact",
        "test_loss",
        "step",
        "train_loss",
        "valid_loss",
        "gap",
        "valid_rise",
        "sec_per_update",
    }
    _, valid_losses = history.curve("valid_loss")
    kept = valid_losses.index(min(valid_losses[2:]))  # the best probe of MAT's phase, not the Transformer's
    assert metrics["step"] == steps[kept] and metrics["train_loss"] == train_losses[kept]
    assert metrics["gap"] == pytest.approx(metrics["valid_loss"] - metrics["train_loss"])
    assert metrics["sec_per_update"] == pytest.approx(history.seconds / 6) and history.seconds > 0
    assert result.model.training and result.num_parameters == count_parameters(result.model)
    assert metrics["test_loss"] == loss_on(result.model, data, data.test)


def test_train_is_reproducible_and_the_probes_do_not_change_the_run() -> None:
    config = MATConfig(num_steps=4, **TINY)
    data = load_data(config)
    first = train(config, data, progress=False)
    rare = train(MATConfig(num_steps=4, **{**TINY, "eval_every": 4}), data, progress=False)
    assert first.history["loss"] == rare.history["loss"]
    assert first.metrics["bleu"] == rare.metrics["bleu"] and first.metrics["gap"] == rare.metrics["gap"]


def test_train_refuses_a_batch_larger_than_the_training_split() -> None:
    config = MATConfig(num_steps=4, **{**TINY, "train_size": 10})
    with pytest.raises(ValueError, match=r"batch_size=16 is larger than the training split \(10 pairs\)"):
        train(config, progress=False)


def test_evaluate_scores_a_split_and_keeps_the_model_mode() -> None:
    config = MATConfig(num_steps=4, **TINY)
    data = load_data(config)
    model = build_model(config, data)
    for mode in (True, False):
        model.train(mode)
        scores = evaluate(model, data, "valid")
        translate(model, data, [data.train[0][0]], beam_size=2)
        loss_on(model, data, data.valid[:4])
        assert model.training is mode
    assert isinstance(scores, MATScores) and 0 <= scores.bleu <= 100 and 0 <= scores.exact <= 100
    assert scores.loss == loss_on(model, data, data.valid)
    row = {"method": "MAT N_a=2", "BLEU": scores.bleu, "exact match (%)": scores.exact, "loss": scores.loss}
    assert scores.row() == row
    assert evaluate(build_model(config, data, num_branches=1), data, label="base").row()["method"] == "base"
    with pytest.raises(ValueError, match="split"):
        evaluate(model, data, "dev")
    with pytest.raises(ValueError, match="beam_size"):
        translate(model, data, [data.train[0][0]], beam_size=0)


def test_best_checkpoint_is_the_probe_with_the_lowest_validation_loss() -> None:
    overfit = {"lr": 3e-2, "eval_every": 1, "train_size": 16, "dropout": 0.0, "label_smoothing": 0.0}
    config = MATConfig(num_steps=25, **{**TINY, **overfit})
    data = load_data(config)
    best, last = train(config, data, progress=False), train(replace(config, checkpoint="last"), data, progress=False)
    assert best.history["loss"] == last.history["loss"], "the checkpoint choice must not change the run"
    steps, valid = best.history.curve("valid_loss")
    kept = valid.index(min(valid))
    assert best.metrics["step"] == steps[kept] and best.metrics["valid_loss"] == valid[kept]
    assert loss_on(best.model, data, data.valid) == pytest.approx(valid[kept], abs=1e-6)
    assert last.metrics["step"] == 25 and last.metrics["valid_loss"] == valid[-1]
    assert loss_on(last.model, data, data.valid) == pytest.approx(valid[-1], abs=1e-6)
    for result in (best, last):
        assert result.metrics["valid_rise"] == pytest.approx(valid[-1] - min(valid))
    assert best.metrics["valid_rise"] > 0, "16 pairs at lr=3e-2 overfit: the best probe is not the last"


def test_paired_difference_is_students_paired_interval() -> None:
    a, b = [3.0, 5.0, 4.0, 6.0, 7.0], [2.0, 2.5, 3.5, 4.0, 4.5]
    paired = paired_difference(a, b)
    differences = [x - y for x, y in zip(a, b)]
    assert paired.mean == pytest.approx(sum(differences) / 5) and paired.n == 5
    assert paired.sd == pytest.approx(torch.tensor(differences).std().item())
    half = 2.7764451051977934 * paired.sd / math.sqrt(5)  # t_{0.975, 4}
    assert (paired.low, paired.high) == (pytest.approx(paired.mean - half), pytest.approx(paired.mean + half))
    assert paired.excludes_zero and not paired_difference([1.0, -1.0, 0.5], [0.0, 0.0, 0.0]).excludes_zero
    assert paired_difference(b, a).high == pytest.approx(-paired.low)
    assert paired_difference(a, b, confidence=0.99).low < paired.low
    assert "95 % interval" in paired.row() and paired.row()["seeds"] == 5


def test_seeds_for_grows_with_the_spread_and_shrinks_with_the_effect() -> None:
    def spread(sd: float) -> PairedDifference:
        return PairedDifference(mean=0.0, sd=sd, low=0.0, high=0.0, n=10, confidence=0.95)

    assert spread(0.0).seeds_for(1.0) == 2
    n = spread(1.0).seeds_for(1.0)
    assert n == 10  # (t_{0.975,9} + t_{0.8,9}) / sqrt(10) = 0.995 <= 1 < 1.07, the same at n = 9
    assert spread(2.0).seeds_for(1.0) > n > spread(1.0).seeds_for(2.0)
    assert spread(1.0).seeds_for(1.0, power=0.9) > n
    with pytest.raises(ValueError, match="effect"):
        spread(1.0).seeds_for(0.0)


def test_paired_difference_refuses_unpaired_or_too_few_values() -> None:
    with pytest.raises(ValueError, match="pair up"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference([1.0], [0.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1.0, 2.0], [0.0, 0.0], confidence=1.0)
    with pytest.raises(ValueError, match="a - b"):
        paired_difference([math.nan, 2.0], [0.0, 0.0])


def test_train_seeds_pairs_every_system_on_the_same_seeds() -> None:
    base = MATConfig(num_steps=4, **TINY)
    data = load_data(base)
    configs = {"Transformer": matched_transformer(base), "MAT": base}
    runs = train_seeds(configs, [3, 5], data, progress=False)
    assert list(runs) == ["Transformer", "MAT"] and [r.config.seed for r in runs["MAT"]] == [3, 5]
    alone = train(replace(base, seed=5), data, progress=False)
    assert runs["MAT"][1].history["loss"] == alone.history["loss"]
    assert runs["MAT"][1].metrics["bleu"] == alone.metrics["bleu"]
    with pytest.raises(ValueError, match="distinct"):
        train_seeds(configs, [1, 1], data)
    with pytest.raises(ValueError, match="workers"):
        train_seeds(configs, [1], data, workers=0)


@pytest.mark.slow
def test_train_seeds_in_worker_processes_gives_the_same_runs() -> None:
    base = MATConfig(num_steps=4, **TINY)
    data = load_data(base)
    configs = {"Transformer": matched_transformer(base), "MAT": base}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers run one thread each: compare like with like
    try:
        alone = train_seeds(configs, [0, 1], data, progress=False)
        parallel = train_seeds(configs, [0, 1], data, workers=2, progress=False)
    finally:
        torch.set_num_threads(threads)
    for name in configs:
        for x, y in zip(alone[name], parallel[name]):
            assert x.history["loss"] == y.history["loss"] and x.metrics["bleu"] == y.metrics["bleu"]
            assert x.config == y.config
            for key, value in x.model.state_dict().items():
                torch.testing.assert_close(y.model.state_dict()[key], value, rtol=0, atol=0)
