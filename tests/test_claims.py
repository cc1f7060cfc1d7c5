import json
import math

import pytest

from reprobook import claims
from reprobook.claims import ClaimNotHeld, claim, claims_table, load_records, recorded, scoreboard


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch, tmp_path):
    monkeypatch.setattr(claims, "_CLAIMS", {})
    monkeypatch.setenv("REPROBOOK_CHAPTER", "toy")
    monkeypatch.setenv("REPROBOOK_CLAIMS_DIR", str(tmp_path))
    monkeypatch.setenv("REPROBOOK_PROFILE", "book")


def test_a_claim_that_holds_is_recorded_glued_and_written(tmp_path, monkeypatch):
    glued = {}
    monkeypatch.setattr(claims, "glue", lambda name, value: glued.__setitem__(name, value))
    c = claim(
        "toy_gain",
        "the method beats the baseline",
        measured=2.0,
        compare=">=",
        threshold=1.5,
        unit="dB",
        fmt="+.2f",
        paper="+10.3 dB (Table 1)",
    )
    assert c.holds and c.here == "+2.00 dB" and c.bar == ">= +1.50 dB"
    assert glued == {"toy_gain": 2.0, "toy_gain_verdict": "holds"}
    saved = json.loads((tmp_path / "toy.json").read_text())
    assert [entry["id"] for entry in saved] == ["toy_gain"]
    assert load_records(tmp_path) == [c]
    assert claims_table().data.iloc[0]["held"] == "yes"


def test_an_asserted_claim_that_fails_stops_the_book_profile_but_is_still_recorded(tmp_path):
    with pytest.raises(ClaimNotHeld, match=r"measured 1.00 dB, required >= 1.50 dB"):
        claim("toy_gain", "beats", measured=1.0, compare=">=", threshold=1.5, unit="dB", fmt=".2f")
    assert [c.id for c in load_records(tmp_path)] == ["toy_gain"]


def test_a_reported_claim_never_raises_and_the_smoke_profile_asserts_nothing(monkeypatch):
    reported = claim("toy_a", "beats", measured=1.0, compare=">=", threshold=1.5, asserted=False)
    assert not reported.holds and reported.verdict == "does not hold"
    monkeypatch.setenv("REPROBOOK_PROFILE", "smoke")
    assert not claim("toy_b", "beats", measured=1.0, compare=">=", threshold=1.5).holds


def test_nan_never_holds_and_bad_arguments_are_named():
    undefined = claim("toy_nan", "x", measured=math.nan, compare="<", threshold=1.0, unit="%", asserted=False)
    assert not undefined.holds and undefined.here == "undefined"  # not "+nan %" in the claims table
    with pytest.raises(ValueError, match="compare"):
        claim("toy", "x", measured=1.0, compare="=>", threshold=1.0)
    with pytest.raises(ValueError, match="id must be a Python identifier"):
        claim("toy gain", "x", measured=1.0, compare=">", threshold=0.0)
    with pytest.raises(ValueError, match="threshold"):
        claim("toy", "x", measured=1.0, compare=">", threshold=math.inf)
    with pytest.raises(ValueError, match="fmt"):
        claim("toy", "x", measured=1.0, compare=">", threshold=0.0, fmt="%d")


def test_restating_a_claim_replaces_it_and_the_scoreboard_links_each_chapter(tmp_path):
    claim("toy_gain", "beats", measured=1.0, compare=">=", threshold=1.5, asserted=False)
    claim("toy_gain", "beats", measured=2.0, compare=">=", threshold=1.5)
    assert [c.measured for c in recorded()] == [2.0]
    html = scoreboard(load_records(tmp_path), {"toy": "Toy chapter"}).to_html()
    assert '<a href="toy.html#the-claims-checked">Toy chapter</a>' in html


def test_a_corrupt_record_names_the_file(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not a claims record"):
        load_records(tmp_path)


def test_a_cell_ending_in_a_claim_shows_one_line() -> None:
    from IPython.lib.pretty import pretty

    c = claim("toy_line", "beats", measured=2.0, compare=">=", threshold=1.5, unit="dB", fmt=".1f", asserted=False)
    assert pretty(c) == "claim toy_line: holds (measured 2.0 dB, needs >= 1.5 dB; reported)"
