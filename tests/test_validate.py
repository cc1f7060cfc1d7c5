import math

import pytest
import torch

from reprobook._validate import (
    check_bool,
    check_choice,
    check_float,
    check_fractions,
    check_image_batch,
    check_int,
    check_range,
    check_triples,
)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_check_int_names_the_argument(bad):
    with pytest.raises(ValueError, match="batch_size"):
        check_int("batch_size", bad, 0)
    assert check_int("batch_size", 3, 1, 5) == 3
    with pytest.raises(ValueError, match="batch_size=6 is out of range; expected 1 <= batch_size <= 5"):
        check_int("batch_size", 6, 1, 5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "0.1", True])
def test_check_float_refuses_non_finite_and_non_numbers(bad):
    with pytest.raises(ValueError, match="lr must be a finite number"):
        check_float("lr", bad)


def test_check_float_ranges_and_open_ends():
    assert check_float("p", 0.0, 0, 1) == 0.0 and check_float("p", 1, 0, 1) == 1
    with pytest.raises(ValueError, match=r"expected 0 < lr$"):
        check_float("lr", 0.0, 0, open_low=True)
    with pytest.raises(ValueError, match=r"expected 0 <= dropout < 1$"):
        check_float("dropout", 1.0, 0, 1, open_high=True)
    with pytest.raises(ValueError, match=r"expected x <= 2"):
        check_float("x", 3.0, high=2)


def test_check_bool_choice_and_range():
    assert check_bool("quantize", True) is True
    with pytest.raises(ValueError, match="quantize must be True or False"):
        check_bool("quantize", 1)
    with pytest.raises(ValueError, match="expected one of: 'a', 'b'"):
        check_choice("mode", "c", ("a", "b"))
    with pytest.raises(ValueError, match="out of range"):
        check_range("start", math.nan, 0.0, 1.0)


@pytest.mark.parametrize("bad", [[0.5], (0.0,), (1.0,), (0.5, True), (0.5, "0.7")])
def test_check_fractions_refuses_what_is_not_a_tuple_of_fractions(bad):
    with pytest.raises(ValueError, match="lr_milestones must be a tuple of fractions"):
        check_fractions("lr_milestones", bad)
    assert check_fractions("lr_milestones", (0.25, 0.9)) == (0.25, 0.9)


def test_check_image_batch():
    check_image_batch("x", torch.zeros(2, 3, 8, 8), channels=3, multiple=4)
    with pytest.raises(ValueError, match=r"x must be a \(B, C, H, W\) tensor, got torch.float32 \(3, 8, 8\)"):
        check_image_batch("x", torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="floats in \\[0, 1\\].*x.float\\(\\) / 255"):
        check_image_batch("x", torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="3 channels"):
        check_image_batch("x", torch.zeros(1, 4, 8, 8), channels=3)
    with pytest.raises(ValueError, match="not divisible by 4"):
        check_image_batch("x", torch.zeros(1, 3, 6, 8), multiple=4)


def test_check_triples():
    check_triples(torch.tensor([[0, 1, 2]]), 3, 2)
    check_triples(torch.zeros(0, 3, dtype=torch.long), 3, 2)
    with pytest.raises(ValueError, match="long tensor"):
        check_triples(torch.zeros(1, 3), 3, 2)
    with pytest.raises(ValueError, match="unknown entity id 3"):
        check_triples(torch.tensor([[0, 1, 3]]), 3, 2)
    with pytest.raises(ValueError, match="unknown relation id 2"):
        check_triples(torch.tensor([[0, 2, 1]]), 3, 2)
