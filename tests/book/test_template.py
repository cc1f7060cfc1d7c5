"""Every chapter reads the same way: the sections of the template in "Using this book", in order.

A chapter is a notebook of ``book/`` other than the front matter. Its ``##`` headings must be exactly the template's,
in order (subsections use ``###``). "The idea" and "Under the hood" may carry a subtitle after a colon.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONT_MATTER = {"using", "scoreboard"}
CHAPTERS = sorted(p for p in (ROOT / "book").glob("*.ipynb") if p.stem not in FRONT_MATTER)
TEMPLATE = (
    r"The idea(: .+)?",
    r"The data",
    r"The implementation",
    r"Training",
    r"Results side by side",
    r"The claims, checked",
    r"Ablations",
    r"Under the hood(: .+)?",
    r"The paper vs\. here",
    r"Summary",
)


def headings(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # headings inside code blocks do not count
    return [line[3:].strip() for line in text.splitlines() if line.startswith("## ")]


def matches_template(found: list[str]) -> bool:
    return len(found) == len(TEMPLATE) and all(re.fullmatch(p, h) for p, h in zip(TEMPLATE, found))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_template(path: Path) -> None:
    found = headings(path)
    assert matches_template(found), f"{path.name}: sections {found}; the template is {list(TEMPLATE)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_states_its_claims_through_the_registry(path: Path) -> None:
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert "claim(" in code and "claims_table(" in code, f"{path.name} must state its claims with reprobook.claims"
    assert "assert " not in code.replace("assert_matches_reference", ""), (
        f"{path.name} asserts outside the claims registry: state the check as a claim(...)"
    )


# "Cells of at most about 20 lines" (issue #24): a cell the reader cannot take in at a glance is split.
MAX_CELL_LINES = 25


def long_code_cells(cells: list[dict]) -> list[tuple[int, int]]:
    """(cell number, lines) of the shown code cells longer than MAX_CELL_LINES (the hidden Colab cell excluded)."""
    return [
        (number, len("".join(c["source"]).splitlines()))
        for number, c in enumerate(cells)
        if c["cell_type"] == "code"
        and "remove-cell" not in c.get("metadata", {}).get("tags", [])
        and len("".join(c["source"]).splitlines()) > MAX_CELL_LINES
    ]


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.stem)
def test_code_cells_fit_on_a_screen(path: Path) -> None:
    found = long_code_cells(json.loads(path.read_text())["cells"])
    assert not found, f"{path.name}: code cells (number, lines) over {MAX_CELL_LINES} lines: {found}; split them"


def test_the_cell_length_check_can_fail() -> None:
    def code(lines: int, tags: tuple[str, ...] = ()) -> dict:
        return {"cell_type": "code", "source": ["x = 1\n"] * lines, "metadata": {"tags": list(tags)}}

    assert long_code_cells([code(MAX_CELL_LINES)]) == []
    assert long_code_cells([code(3), code(MAX_CELL_LINES + 1)]) == [(1, MAX_CELL_LINES + 1)]
    assert long_code_cells([code(40, ("remove-cell",))]) == []


def test_the_template_check_can_fail() -> None:
    good = [t.split("(")[0].replace("\\", "") for t in TEMPLATE]
    assert matches_template(good)
    assert not matches_template(good[1:])  # a missing section
    assert not matches_template([good[1], good[0], *good[2:]])  # sections out of order
    assert not matches_template([*good, "Extra"])  # an unlisted section
