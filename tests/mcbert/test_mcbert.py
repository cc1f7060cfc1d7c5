"""MC-BERT: the toy world and its rule-checked labels, candidates, the losses, FLOPs accounting, bad input."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from reprobook import mcbert
from reprobook.mcbert import data as world
from reprobook.mcbert.model import MASK_ID, NEITHER_ID, PAD_ID, Pretrainer, build_candidates, official_loss


@pytest.fixture(scope="module")
def data() -> mcbert.MCBERTData:
    return mcbert.make_world(corpus_size=300, task_size=60, test_size=30, seed=3)


def small(objective: str, vocab: int, **kwargs) -> Pretrainer:
    return Pretrainer(objective, vocab, d=16, heads=2, layers=1, ffn=32, dropout=0.0, **kwargs)


def test_world_is_deterministic_per_seed() -> None:
    a, b = (mcbert.make_world(50, 12, 6, seed=1) for _ in range(2))
    c = mcbert.make_world(50, 12, 6, seed=2)
    assert torch.equal(a.corpus, b.corpus) and torch.equal(a.sem_test.ids, b.sem_test.ids)
    assert not torch.equal(a.corpus, c.corpus)


def test_rule_evaluators_confirm_every_label(data: mcbert.MCBERTData) -> None:
    for task, rule in ((data.sem_train, "sem"), (data.syn_train, "syn"), (data.sem_test, "sem")):
        for text, label in zip(task.texts, task.labels.tolist()):
            parts = [p.split() for p in text.split(" | ")]
            if rule == "sem":
                assert world.sem_rule(*parts) == world.SEM_LABELS[label], text
            else:
                assert world.syn_rule(parts[0]) == bool(label), text
    rng = random.Random(0)
    for _ in range(200):
        assert world.syn_rule(world.sentence(rng))

    def sem(premise: str, hypothesis: str) -> str:
        return world.sem_rule(premise.split(), hypothesis.split())

    assert sem("the big dog eats the apple", "the big animal eats the apple") == "entailment"
    assert sem("the big dog eats the apple", "the big person eats the apple") == "contradiction"
    assert sem("the animal eats the apple", "the dog eats the apple") == "neutral"
    assert sem("the animal eats the apple", "the cook eats the apple") == "contradiction"
    assert sem("the big dog eats the apple", "the small dog eats the apple") == "contradiction"
    for label in world.SEM_LABELS:
        for held_out in (False, True):
            for _ in range(100):
                assert world.sem_rule(*world.sem_pair(rng, label, held_out, rng.random() < 0.5)) == label
    assert not world.syn_rule(["the", "dogs", "eats", "a", "apple"])


def test_tasks_are_balanced(data: mcbert.MCBERTData) -> None:
    # entailment and neutral a quarter each, contradiction half: half the edits turn a noun into a class word
    assert torch.bincount(data.sem_train.labels).tolist() == [15, 15, 30]
    assert torch.bincount(data.syn_train.labels).tolist() == [30, 30]


def test_sem_test_edits_only_held_out_nouns(data: mcbert.MCBERTData) -> None:
    def nouns(text: str) -> set[str]:
        words = {w[:-1] if w[:-1] in world.HYPERNYM else w for w in text.replace("|", " ").split()}
        return words & set(world.HYPERNYM)

    assert not any(nouns(t) & world.HELD_OUT for t in data.sem_train.texts)  # never shown with a label
    for text in data.sem_test.texts:
        premise, hypothesis = (nouns(part) for part in text.split(" | "))
        assert len(premise ^ hypothesis) == 2 and len((premise ^ hypothesis) & world.HELD_OUT) == 1, text
    held = " ".join(data.decode(row) for row in data.corpus[:300])
    assert all(f" {n} " in f" {held} " or f" {n}s " in f" {held} " for n in world.HELD_OUT)


def test_candidates_neither_in_slot_zero_original_in_slot_one_exactly_when_replaced() -> None:
    ids = torch.tensor([[1, 10, 11, 12, 0]])
    masked = torch.tensor([[False, True, True, False, False]])
    samples = torch.tensor([[[7, 8, 9], [10, 13, 14], [15, 16, 17], [18, 19, 20], [6, 6, 6]]])
    corrupted, replaced, candidates, label = build_candidates(ids, samples, masked)
    assert corrupted.tolist() == [[1, 10, 15, 12, 0]]  # position 1 drew its own word: not replaced
    assert replaced.tolist() == [[False, False, True, False, False]]
    assert (candidates[..., 0] == NEITHER_ID).all()
    assert candidates[0, 2, 1] == 11 and candidates[0, 1, 1] == 13  # the original only where replaced
    assert label.tolist() == [[0, 0, 1, 0, -1]]


def test_mc_loss_equals_a_naive_computation(data: mcbert.MCBERTData) -> None:
    torch.manual_seed(0)
    model = small("mcbert", len(data.vocab), num_candidates=4)
    ids = data.corpus[:8]
    out = model.losses(ids, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # replay the same masking and sampling by hand
    masked = torch.rand(ids.shape, generator=g) < model.mask_rate
    masked &= ids >= 6
    masked_ids = ids.masked_fill(masked, MASK_ID)
    logits = model.controller_logits(masked_ids)
    mlm = F.cross_entropy(logits[masked], ids[masked], reduction="sum")
    samples = model.sample(logits, 4, g)
    corrupted, replaced, cand, label = build_candidates(ids, samples, masked)
    u = model.head(model.encode(corrupted))
    mc = 0.0
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            if ids[b, t] == PAD_ID:
                continue
            z = torch.stack([u[b, t] @ model.embed.weight[c] + model.bias[c] for c in cand[b, t]])
            right = cand[b, t] == cand[b, t, label[b, t]]
            mc = mc + z.logsumexp(0) - z[right].logsumexp(0)
    m, n = int(masked.sum()), int((ids != PAD_ID).sum())
    expected = (mlm + 50.0 * mc * m / n) / m
    torch.testing.assert_close(out["loss"], expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(official_loss(mlm, mc, m, n, 50.0), mlm / m + 50.0 * mc / n)


def test_controller_shares_the_projected_table_and_bias(data: mcbert.MCBERTData) -> None:
    model = small("mcbert", len(data.vocab))
    assert not any("small.embed" in name for name, _ in model.named_parameters())
    logits = model.controller_logits(data.corpus[:2])
    logits.sum().backward()
    assert model.embed.weight.grad is not None and model.bias.grad is not None


def test_flops_hand_counted() -> None:
    config = mcbert.MCBERTConfig(
        objective="mcbert", d_model=4, num_heads=1, layers=1, ffn_dim=8, divider=2, num_candidates=3,
        batch_size=1, mask_rate=0.5, max_len=16,
    )  # fmt: skip
    parts = mcbert.step_flops(config, vocab=10, seq_len=2)
    # D: 2 tokens x (4*16 + 2*2*4 + 2*4*8) = 2 x 144 multiply-adds, x2 FLOPs, x3 for the backward
    assert parts["D encoder"] == 3 * 2 * 2 * 144
    assert parts["D candidate head"] == 3 * 2 * (2 * 16 + 2 * 4 * 3)
    # controller: d_c = 2, f = 4: 2 x (4*4 + 2*2*2 + 2*2*4) = 2 x 40
    assert parts["small encoder"] == 3 * 2 * 2 * 40
    assert parts["small table E P"] == 3 * 2 * 10 * 4 * 2
    assert parts["small vocab head (masked)"] == 3 * 1 * (2 * 4 + 2 * 2 * 10) + 5 * 1 * 10
    assert parts["controller softmax (all tokens)"] == 2 * (2 * 2 * 10 + 5 * 10)
    configs = mcbert.equal_compute(replace(config, num_steps=100), vocab=10)
    spent = {o: c.num_steps * sum(mcbert.step_flops(c, 10).values()) for o, c in configs.items()}
    assert max(spent.values()) / min(spent.values()) < 1.02 and configs["mlm"].num_steps == 100


@pytest.mark.parametrize("objective", ["mlm", "electra", "mcbert"])
def test_tiny_overfit(objective: str, data: mcbert.MCBERTData) -> None:
    torch.manual_seed(0)
    model = small(objective, len(data.vocab))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = data.corpus[:16]
    losses = []
    for step in range(60):
        out = model.losses(batch, torch.Generator().manual_seed(step % 4))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8


def test_finetune_and_probe_run(data: mcbert.MCBERTData) -> None:
    model = small("mlm", len(data.vocab))
    scores = mcbert.evaluate(model, data, num_steps=3, seeds=(0, 1))
    assert 0 <= scores.sem <= 100 and len(scores.syn_runs) == 2 and "SEM acc (%)" in scores.row()
    assert len(mcbert.nearest_words(model, data, "dog", 3)) == 3
    sem_only = mcbert.evaluate(model, data, num_steps=2, tasks=("SEM",))
    assert sem_only.syn != sem_only.syn and not sem_only.syn_runs  # SYN left out: NaN, no runs
    with pytest.raises(ValueError, match="tasks"):
        mcbert.evaluate(model, data, num_steps=2, tasks=("GLUE",))
    per_task = mcbert.evaluate(model, data, num_steps=2, seeds={"SEM": (0, 1, 2), "SYN": (0,)})
    assert len(per_task.sem_runs) == 3 and len(per_task.syn_runs) == 1
    assert per_task.sem_runs[0] == sem_only.sem_runs[0]  # seed 0 fine-tunes the same way either way
    with pytest.raises(ValueError, match="at least one seed"):
        mcbert.evaluate(model, data, num_steps=2, seeds={"SEM": ()})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_candidates": 1}, "num_candidates"),
        ({"mask_rate": 0.0}, "mask_rate"),
        ({"mask_rate": 1.0}, "mask_rate"),
        ({"objective": "xlnet"}, "objective"),
        ({"lr": float("nan")}, "lr"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_refuses_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mcbert.MCBERTConfig(**kwargs)


def test_bad_sequences(data: mcbert.MCBERTData) -> None:
    model = small("mcbert", len(data.vocab))
    with pytest.raises(ValueError, match="longer than"):
        model.encode(torch.full((1, 40), 7))
    with pytest.raises(ValueError, match="unknown"):
        model.encode(torch.tensor([[1, 999]]))
    with pytest.raises(ValueError, match="unknown tokens"):
        data.encode(["the", "unicorn"])
    with pytest.raises(ValueError, match="longer than max_len"):
        data.encode(["dog"] * 30)


def test_frozen_controller_keeps_its_weights(monkeypatch: pytest.MonkeyPatch, data: mcbert.MCBERTData) -> None:
    monkeypatch.setenv("REPROBOOK_PROFILE", "smoke")
    config = mcbert.MCBERTConfig(objective="electra", num_steps=3, eval_every=3, freeze_small=True, warmup=1)
    result = mcbert.train(config, data, progress=False)
    first, last = result.snapshots[min(result.snapshots)], result.model.state_dict()  # after step 1, after step 3
    for name in ("proj.weight", "small_head.linear.weight"):
        assert torch.equal(first[name], last[name]), name
    assert not torch.equal(first["rtd.0.weight"], last["rtd.0.weight"])
