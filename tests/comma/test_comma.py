"""CoMMA: masking, the density ratio, mix-attention, the alignment target, distillation, a tiny overfit per task,
and bad input."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reprobook import comma
from reprobook.comma.baselines import ar_loss
from reprobook.comma.data import batches, collate
from reprobook.nn.transformer import MultiHeadAttention


@pytest.fixture(autouse=True)
def _smoke(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROBOOK_PROFILE", "smoke")


@pytest.fixture(scope="module")
def nmt() -> comma.CoMMAData:
    return comma.load_data(comma.CoMMAConfig(task="nmt", num_sentences=120))


def test_uniform_attention_gives_one_and_hand_built_values() -> None:
    n, m = torch.tensor([4, 2]), torch.tensor([6, 2])
    masked = torch.tensor([[True, True, False, True], [True, False, False, False]])
    uniform = torch.stack([torch.full((4, 4), 4 / 10), torch.full((4, 4), 2 / 4)])  # (B, heads, N)
    assert torch.allclose(comma.density_ratio([uniform], masked, m, n), torch.ones(2))
    half = torch.full((2, 3, 4), 0.5)
    half[0, :, 2] = 0.9  # an unmasked position: never counted
    expected = torch.tensor([0.5 * 10 / 4, 0.5 * 4 / 2])
    assert torch.allclose(comma.density_ratio([half, half], masked, m, n), expected)
    share = comma.density_ratio([half, half], masked, m, n, length_normalised=False)
    assert torch.allclose(share, torch.full((2,), 0.5))  # the target's share of the attention, no (N + M) / N


@given(st.floats(0, 1), st.lists(st.integers(1, 30), min_size=1, max_size=6), st.integers(0, 2**31))
def test_masking_respects_p_padding_and_masks_one_at_least(p: float, lengths: list[int], seed: int) -> None:
    lengths_t = torch.tensor(lengths)
    masked = comma.mask_targets(lengths_t, p, torch.Generator().manual_seed(seed))
    assert (masked.sum(1) >= 1).all()
    assert not (masked & (torch.arange(masked.shape[1]) >= lengths_t[:, None])).any()
    if p == 1.0:
        assert (masked.sum(1) == lengths_t).all()


def test_masking_rate_is_p_on_average() -> None:
    masked = comma.mask_targets(torch.full((400,), 50), 0.3, torch.Generator().manual_seed(0))
    assert abs(masked.float().mean().item() - 0.3) < 0.01


def test_mix_attention_equals_attention_over_the_concatenation() -> None:
    mix, naive = comma.MixAttention(16, 4), MultiHeadAttention(16, 4)
    naive.load_state_dict(mix.state_dict())
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    src_pad = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])
    tgt_pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    both = torch.cat([memory, x], dim=1)
    expected = naive(x, both, both, key_padding_mask=torch.cat([src_pad, tgt_pad], 1))
    for need in (False, True):
        out, mass, _ = mix(x, memory, src_pad, tgt_pad, need_weights=need)
        assert torch.allclose(out, expected, atol=1e-5)
        assert ((mass > 0) & (mass < 1)).all()


def test_alignment_targets_sum_to_one_and_mismatches_are_refused() -> None:
    durations = torch.tensor([3, 5, 1, 7])
    align = comma.duration_alignment(durations, 16)
    assert align.shape == (4, 4) and torch.allclose(align.sum(1), torch.ones(4))
    assert torch.allclose(align[0], torch.tensor([0.75, 0.25, 0, 0]))
    assert torch.allclose(comma.diagonal_alignment(5, 9).sum(1), torch.ones(5))
    with pytest.raises(ValueError, match="mismatched lengths"):
        comma.duration_alignment(durations, 20)
    with pytest.raises(ValueError, match="non-empty"):
        comma.diagonal_alignment(0, 3)


def test_bad_input_gets_a_clear_error(nmt: comma.CoMMAData) -> None:
    with pytest.raises(ValueError, match="p must lie"):
        comma.mask_targets(torch.tensor([3]), 1.5)
    with pytest.raises(ValueError, match="lengths"):
        comma.mask_targets(torch.tensor([0, 3]), 0.5)
    with pytest.raises(ValueError, match="empty"):
        collate([replace(nmt.train[0], tgt=torch.zeros(0, dtype=torch.long))])
    with pytest.raises(ValueError, match="task"):
        comma.CoMMAConfig(task="ocr")
    with pytest.raises(ValueError, match="align_weight"):
        comma.CoMMAConfig(align_weight=-1.0)


def test_multimodal_targets_and_deterministic_distillation(nmt: comma.CoMMAData) -> None:
    assert len(comma.renderings(234)) == 4 and len(comma.renderings(30)) == 1
    assert all(nmt.tgt_vocab.decode(x.tgt.tolist()) in x.refs for x in nmt.train)
    config = comma.CoMMAConfig(task="nmt", model="ar", num_steps=3, num_sentences=120)
    teacher = comma.train(config, nmt, progress=False).model
    first, second = comma.distill(teacher, nmt), comma.distill(teacher, nmt)
    assert all(torch.equal(a.tgt, b.tgt) for a, b in zip(first.train, second.train))
    assert all(torch.equal(a.src, b.src) for a, b in zip(first.train, nmt.train))


@pytest.mark.parametrize("task", ["nmt", "asr", "tts"])
@pytest.mark.parametrize("model", ["comma", "ar"])
def test_tiny_overfit_per_task(task: str, model: str) -> None:
    config = comma.CoMMAConfig(task=task, model=model, num_sentences=60, num_utterances=10, num_steps=1)
    data = comma.load_data(config)
    data = replace(data, train=data.train[:4])
    torch.manual_seed(0)
    net = comma.build_model(config, data)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    batch = next(batches(data.train, 4, 0))
    masked = comma.mask_targets(batch.tgt_len, 0.5, torch.Generator().manual_seed(0))  # fixed: overfit it
    losses = []
    for _ in range(80):
        terms = ar_loss(net, batch) if model == "ar" else comma.comma_loss(net, batch, masked)
        optimizer.zero_grad()
        terms["pred"].backward()
        optimizer.step()
        losses.append(float(terms["pred"].detach()))
    assert losses[-1] < 0.75 * losses[0], losses[::10]


def test_alignment_loss_trains_and_ratio_curve_is_finite() -> None:
    config = comma.CoMMAConfig(task="tts", num_utterances=10, num_steps=3, align_weight=1.0)
    data = comma.load_data(config)
    result = comma.train(config, data, progress=False)
    assert result.history["align"][-1] > 0
    curve = comma.ratio_curve(result.model, data, ps=(0.2, 1.0))
    assert len(curve) == 2 and all(r > 0 for r in curve)


@pytest.mark.parametrize("task", ["asr", "tts"])
def test_stack_sets_the_speech_side_length(task: str) -> None:
    by4, by8 = (comma.load_data(comma.CoMMAConfig(task=task, num_utterances=10, stack=k)) for k in (4, 8))
    side = "src" if task == "asr" else "tgt"
    for a, b in zip(by4.train, by8.train):
        assert len(getattr(b, side)) == len(getattr(a, side)) // 2
        assert b.align.shape == (len(b.tgt), len(b.src))
        assert torch.allclose(b.align.sum(-1), torch.ones(len(b.tgt)))
    assert by8.src_dim == 2 * by4.src_dim if task == "asr" else by8.tgt_dim == by4.tgt_dim
    with pytest.raises(ValueError, match="stack"):
        comma.CoMMAConfig(task=task, stack=0)
