"""MAT: multi-branch attention, drop-branch, proximal initialisation, configs and bad inputs."""

from __future__ import annotations

import pytest
import torch

from reprobook.mat import (
    MATConfig,
    MultiBranchAttention,
    attention_maps,
    build_model,
    load_data,
    mat_transformer,
    matched_configs,
    proximal_init,
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


def test_matched_configs_have_nearly_equal_parameter_counts() -> None:
    base = MATConfig(num_steps=10, corpus_size=200, src_level="word")
    data = load_data(base)
    counts = {name: count_parameters(build_model(c, data)) for name, c in matched_configs(base).items()}
    assert len(set(list(counts.values())[1:])) == 1
    assert abs(counts["Transformer"] - counts["MAT, rho=0"]) < 0.01 * counts["Transformer"]


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
    with pytest.raises(ValueError, match="N_a"):
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
