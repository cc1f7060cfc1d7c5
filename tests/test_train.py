import pytest
import torch

from reprobook.train import History, device, fit, load_checkpoint, save_checkpoint, seed_everything


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
