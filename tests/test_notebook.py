import sys
import types

import pytest

from reprobook.notebook import glue


def test_glue_hands_the_value_to_myst_nb(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(glue=lambda name, value, display: calls.append((name, value, display)))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    assert glue("psnr_db", 41.25) == 41.25
    assert calls == [("psnr_db", 41.25, False)]


def test_glue_without_myst_nb_still_returns_the_value(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # makes the import fail
    assert glue("psnr_db", 41.25) == 41.25


def test_glue_rejects_names_a_role_cannot_use():
    with pytest.raises(ValueError, match="name must be a Python identifier"):
        glue("psnr db", 1.0)
