"""The shared Transformer: shapes, masks, decoding, loss and schedule."""

from __future__ import annotations

import math

import pytest
import torch

from reprobook.nn.transformer import (
    MultiHeadAttention,
    Seq2SeqTransformer,
    TransformerSizes,
    beam_search,
    greedy_decode,
    inverse_sqrt_schedule,
    label_smoothed_loss,
)


def _model(seed: int = 0) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    return Seq2SeqTransformer(
        TransformerSizes(src_vocab=13, tgt_vocab=11, d_model=16, num_heads=2, encoder_ff=32, dropout=0.0)
    ).eval()


def test_attention_matches_torch_multihead_attention() -> None:
    """Our attention with torch's weights computes what nn.MultiheadAttention computes, padding included."""
    torch.manual_seed(0)
    ours, theirs = MultiHeadAttention(16, 4), torch.nn.MultiheadAttention(16, 4, batch_first=True)
    with torch.no_grad():
        w = theirs.in_proj_weight.chunk(3)
        bias = theirs.in_proj_bias.chunk(3)
        for proj, weight, b in zip((ours.q_proj, ours.k_proj, ours.v_proj), w, bias):
            proj.weight.copy_(weight)
            proj.bias.copy_(b)
        ours.out_proj.load_state_dict(theirs.out_proj.state_dict())
    q, kv = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    padding = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])
    expected, _ = theirs(q, kv, kv, key_padding_mask=padding)
    torch.testing.assert_close(ours(q, kv, kv, padding), expected)


def test_causal_mask_hides_the_future() -> None:
    attn = MultiHeadAttention(8, 2).eval()
    x = torch.randn(1, 6, 8)
    out = attn(x, x, x, causal=True)
    changed = x.clone()
    changed[:, 4:] = torch.randn(1, 2, 8)
    torch.testing.assert_close(attn(changed, changed, changed, causal=True)[:, :4], out[:, :4])


def test_padding_does_not_change_the_output() -> None:
    model = _model()
    src = torch.tensor([[5, 6, 7, 2]])
    tgt = torch.tensor([[1, 4, 5]])
    padded = torch.tensor([[5, 6, 7, 2, 0, 0]])
    torch.testing.assert_close(model(padded, tgt), model(src, tgt))
    assert model(src, tgt).shape == (1, 3, 11)


def test_beam_one_equals_greedy_and_beam_is_at_least_as_likely() -> None:
    model = _model(1)
    src = torch.randint(4, 13, (6, 7))
    greedy = greedy_decode(model, src, bos_id=1, eos_id=2, max_len=9)
    assert torch.equal(beam_search(model, src, 1, 2, beam_size=1, max_len=9), greedy)
    beam = beam_search(model, src, 1, 2, beam_size=4, max_len=9, length_penalty=0.0)

    def logprob(ids: torch.Tensor) -> torch.Tensor:
        tgt_in = torch.cat([torch.ones(len(ids), 1, dtype=torch.long), ids[:, :-1]], 1)
        logp = model(src, tgt_in).log_softmax(-1).gather(-1, ids[..., None])[..., 0]
        return logp.masked_fill(ids == 0, 0.0).sum(-1)

    ended = lambda ids: (ids == 2).any(-1)
    both = ended(greedy) & ended(beam)
    assert both.any(), "the test needs sentences where both searches end with <eos>"
    assert (logprob(beam)[both] >= logprob(greedy)[both] - 1e-5).all()


def test_label_smoothing_and_padding() -> None:
    logits = torch.randn(2, 3, 5)
    target = torch.tensor([[1, 2, 0], [3, 0, 0]])
    plain = label_smoothed_loss(logits, target, smoothing=0.0)
    expected = torch.nn.functional.cross_entropy(logits[target != 0], target[target != 0])
    torch.testing.assert_close(plain, expected)
    assert label_smoothed_loss(logits, target, 0.1) != plain
    with pytest.raises(ValueError, match="smoothing"):
        label_smoothed_loss(logits, target, smoothing=1.0)


def test_inverse_sqrt_schedule_warms_up_then_decays() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = inverse_sqrt_schedule(optimizer, warmup=4)
    rates = []
    for _ in range(16):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert rates[15] == pytest.approx(math.sqrt(4 / 16))


def test_bad_inputs_raise_clear_errors() -> None:
    attn = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="key and value"):
        attn(torch.randn(1, 3, 8), torch.randn(1, 4, 8), torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="key_padding_mask"):
        attn(torch.randn(1, 3, 8), torch.randn(1, 4, 8), torch.randn(1, 4, 8), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(_model(), torch.ones(1, 2, dtype=torch.long), 1, 2, beam_size=0)


def test_tiny_overfit() -> None:
    """Loss falls on a handful of pairs."""
    model = _model(2).train()
    src, tgt = torch.randint(4, 13, (4, 5)), torch.randint(4, 11, (4, 6))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = label_smoothed_loss(model(src, tgt[:, :-1]), tgt[:, 1:], 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
