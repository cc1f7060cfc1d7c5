"""Seed noise: pooled spread and margins in standard errors, against hand-computed values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reprobook.metrics import margin_in_se, pooled_sd


def test_pooled_sd_of_two_groups_by_hand() -> None:
    # deviations: (-1, 0, 1) and (-2, 2): squares 2 + 8 = 10 over 5 - 2 = 3 degrees of freedom
    assert pooled_sd([1.0, 2.0, 3.0], [8.0, 12.0]) == pytest.approx(math.sqrt(10 / 3))


def test_one_group_is_its_sample_sd() -> None:
    assert pooled_sd([2.0, 4.0, 9.0]) == pytest.approx(3.605551275, rel=1e-9)


def test_margin_in_standard_errors_by_hand() -> None:
    # means 2 and 1, sd 0.5: s.e. of the difference = 0.5 * sqrt(1/3 + 1/1)
    assert margin_in_se([1.5, 2.0, 2.5], [1.0], 0.5) == pytest.approx(1 / (0.5 * math.sqrt(4 / 3)))
    assert margin_in_se([1.0], [1.5, 2.0, 2.5], 0.5) < 0


@given(st.lists(st.floats(-100, 100), min_size=2, max_size=6), st.floats(-50, 50))
def test_pooled_sd_ignores_a_shift(values: list[float], shift: float) -> None:
    assert pooled_sd(values) == pytest.approx(pooled_sd([v + shift for v in values]), abs=1e-6)


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="two values at least"):
        pooled_sd([1.0, 2.0], [3.0])
    with pytest.raises(ValueError, match="sd must be > 0"):
        margin_in_se([1.0], [2.0], 0.0)
    with pytest.raises(ValueError, match="one value at least"):
        margin_in_se([], [2.0], 1.0)
