import pytest
import torch

from reprobook.nn import count_parameters, eval_mode


def test_count_parameters_counts_only_trainable_ones():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    assert count_parameters(net) == 3 * 4 + 4 + 4 + 1
    net[0].weight.requires_grad_(False)
    assert count_parameters(net) == 4 + 4 + 1
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        count_parameters([1, 2])


def test_eval_mode_restores_each_models_mode_even_after_an_error():
    training, frozen = torch.nn.Dropout(), torch.nn.Dropout().eval()
    with eval_mode(training, frozen):
        assert not training.training and not frozen.training
    assert training.training and not frozen.training
    with pytest.raises(RuntimeError), eval_mode(training):
        raise RuntimeError("boom")
    assert training.training
