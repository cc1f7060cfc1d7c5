import math

import pytest
import torch

from reprobook.train import (
    BestCheckpoint,
    History,
    NonFiniteLossError,
    RunResult,
    Scores,
    device,
    fit,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    step_decay,
)


def test_seed_everything_makes_runs_repeatable():
    seed_everything(3)
    a = torch.randn(4)
    seed_everything(3)
    assert torch.equal(a, torch.randn(4))


def test_fit_reduces_loss_on_a_tiny_regression():
    seed_everything(0)
    X = torch.randn(32, 3)
    y = X @ torch.tensor([1.0, -2.0, 0.5])
    net = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(batch):
        inputs, targets = batch
        loss = torch.nn.functional.mse_loss(net(inputs).squeeze(-1), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    history = fit(step, [(X[:16], y[:16]), (X[16:], y[16:])], num_steps=60, progress=False)
    assert len(history["loss"]) == 60 and history.steps[-1] == 60
    assert history.last("loss") < 0.05 * history["loss"][0]


def test_fit_logs_every_n_steps_and_the_last():
    history = fit(lambda b: {"loss": b}, [1.0, 2.0, 3.0], num_steps=7, log_every=3, progress=False)
    assert history.steps == [3, 6, 7]
    assert history["loss"] == [3.0, 3.0, 1.0]


def test_fit_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_steps"):
        fit(lambda b: {"loss": 0.0}, [1], num_steps=0)
    with pytest.raises(ValueError, match="batches is empty"):
        fit(lambda b: {"loss": 0.0}, [], num_steps=2, progress=False)


def test_history_unknown_key_lists_choices():
    history = History()
    history.append(1, {"loss": 1.0})
    with pytest.raises(ValueError, match="'loss'"):
        history["psnr"]


def test_device_choice(monkeypatch):
    monkeypatch.delenv("REPROBOOK_DEVICE", raising=False)
    assert device("cpu").type == "cpu"
    assert device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device='tpu'"):
        device("tpu")


def test_checkpoint_round_trip(tmp_path):
    net = torch.nn.Linear(2, 2)
    path = save_checkpoint(tmp_path / "ckpt" / "net.pt", net, step=7)
    other = torch.nn.Linear(2, 2)
    extras = load_checkpoint(path, other)
    assert extras == {"step": 7}
    assert torch.equal(net.weight, other.weight)


def test_fit_evaluates_on_schedule_and_keeps_evaluation_out_of_the_clock():
    import time

    calls = []

    def slow_evaluate(step):
        calls.append(step)
        time.sleep(0.05)
        return {"valid": 10.0 - step}

    history = fit(lambda b: {"loss": b}, [1.0], num_steps=7, evaluate=slow_evaluate, eval_every=3, progress=False)
    assert calls == [3, 6, 7]
    assert [p.step for p in history.evaluations] == [3, 6, 7]
    assert history.curve("valid") == ([3.0, 6.0, 7.0], [7.0, 4.0, 3.0])
    assert history.num_steps == 7
    assert history.seconds < 0.05, "three evaluations of 50 ms each must not count as training time"
    seconds, _ = history.curve("valid", against="seconds")
    assert seconds == sorted(seconds) and seconds[-1] <= history.seconds
    assert history.seconds_to("valid", 4.0) == seconds[1]
    assert history.seconds_to("valid", -1.0) is None


def test_fit_evaluates_before_the_first_step_when_asked():
    history = fit(lambda b: {"loss": b}, [1.0], 4, evaluate=lambda s: {"m": s}, eval_at_start=True, progress=False)
    assert [p.step for p in history.evaluations] == [0, 1, 2, 3, 4]
    assert history.evaluations[0].seconds == 0.0


def test_fit_continues_a_history():
    first = fit(lambda b: {"loss": 1.0}, [0], 3, progress=False)
    both = fit(lambda b: {"loss": 2.0}, [0], 2, history=first, evaluate=lambda s: {"m": s}, progress=False)
    assert both is first and both.steps == [1, 2, 3, 4, 5] and both.num_steps == 5
    assert [p.step for p in both.evaluations] == [4, 5]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_fit_stops_on_a_non_finite_loss_naming_the_step_and_the_terms(bad):
    losses = iter([1.0, 0.5, bad, 0.1])
    with pytest.raises(NonFiniteLossError, match=r"step 3 returned non-finite recon \(loss=0.3, recon="):
        fit(lambda b: {"loss": 0.3, "recon": next(losses)}, [0], 4, desc="toy", progress=False)


def test_history_last_refuses_an_empty_window():
    history = History()
    history.append(1, {"loss": 1.0})
    with pytest.raises(ValueError, match="window"):
        history.last("loss", 0)


def test_fit_refuses_a_bad_schedule():
    with pytest.raises(ValueError, match="eval_every"):
        fit(lambda b: {"loss": 0.0}, [1], 2, evaluate=lambda s: {}, eval_every=0, progress=False)
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_run_result_counts_parameters_and_seconds():
    history = History(seconds=2.5)
    result = RunResult(config=None, model=torch.nn.Linear(3, 2), history=history)
    assert result.num_parameters == 8 and result.seconds == 2.5
    with pytest.raises(NotImplementedError, match="row"):
        Scores(label="x").row()


def test_best_checkpoint_keeps_the_strictly_best_comparable_score_and_restores_it() -> None:
    model = torch.nn.Linear(2, 1)
    lowest = BestCheckpoint(lower_is_better=True)
    assert not lowest.restore(model) and lowest.step is None
    assert lowest.offer(1, 0.5, model)
    kept = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not lowest.offer(2, 0.5, model)  # a tie does not replace
    assert not lowest.offer(3, math.nan, model)  # NaN never does
    assert lowest.offer(4, 0.25, model) and lowest.step == 4
    assert not lowest.offer(5, 0.3, model)
    with torch.no_grad():
        model.weight.zero_()
    assert lowest.restore(model) and torch.equal(model.weight, kept + 1.0)
    highest = BestCheckpoint(lower_is_better=False)
    assert highest.offer(1, -5.0, model) and not highest.offer(2, -6.0, model) and highest.score == -5.0


def test_step_decay_multiplies_every_group_at_the_milestones():
    weight = torch.nn.Parameter(torch.zeros(1))
    bias = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [weight], "lr": 1.0}, {"params": [bias], "lr": 10.0}])
    schedule = step_decay(optimizer, 10, (0.5, 0.8), 0.1)
    rates = []
    for _ in range(10):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        schedule.step()
    assert rates[4] == [1.0, 10.0]
    assert rates[5] == pytest.approx([0.1, 1.0]) and rates[7] == pytest.approx([0.1, 1.0])
    assert rates[8] == pytest.approx([0.01, 0.1])
