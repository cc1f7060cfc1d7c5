import pytest

import reprobook
from reprobook.profiles import claims_checked


def test_default_profile_is_book(monkeypatch):
    monkeypatch.delenv("REPROBOOK_PROFILE", raising=False)
    assert reprobook.profile() == "book"
    assert reprobook.pick(smoke=1, book=2, full=3) == 2
    assert claims_checked()


@pytest.mark.parametrize(("name", "expected"), [("smoke", 1), ("book", 2), ("full", 3), (" full ", 3)])
def test_pick_follows_the_environment(monkeypatch, name, expected):
    monkeypatch.setenv("REPROBOOK_PROFILE", name)
    assert reprobook.pick(smoke=1, book=2, full=3) == expected


def test_smoke_does_not_check_claims(monkeypatch):
    monkeypatch.setenv("REPROBOOK_PROFILE", "smoke")
    assert not claims_checked()


def test_typo_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv("REPROBOOK_PROFILE", "smok")
    with pytest.raises(ValueError, match=r"REPROBOOK_PROFILE='smok'.*'smoke', 'book', 'full'"):
        reprobook.profile()
