"""The claims registry: each chapter states each claim of its paper once, here, and the book keeps the score.

A chapter calls :func:`claim` once per claim, with the number its run measured::

    claim("irn_beats_bicubic", "IRN reconstructs the photos better than bicubic down- and upscaling",
          measured=irn_psnr - bicubic_psnr, compare=">=", threshold=1.5, unit="dB", fmt="+.2f",
          paper="+10.33 dB (Set5 x2, Table 1)")

:func:`claim`

* decides whether the claim holds (``measured compare threshold``; NaN never holds);
* asserts it in the ``book`` and ``full`` profiles when ``asserted=True``, so a claim that stops holding fails the
  build with the numbers in the message; ``asserted=False`` reports a claim that does not hold at this scale
  (the chapter says why), never hides it;
* glues the measured value as ``<id>`` and the verdict as ``<id>_verdict`` ("holds" / "does not hold") for the
  prose, so no result is typed;
* records it: with ``REPROBOOK_CLAIMS_DIR`` set (the book build sets it), each chapter's claims are written to
  ``<dir>/<chapter>.json``; the Scoreboard page reads them back with :func:`load_records`.

:func:`claims_table` shows a chapter's claims as one table; :func:`scoreboard` the whole book's.
"""

from __future__ import annotations

import json
import math
import operator
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reprobook._validate import check_choice, check_nonempty_text
from reprobook.notebook import glue, table
from reprobook.profiles import claims_checked, profile

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
DIRECTION_ONLY = "direction only"
DIR_ENV, CHAPTER_ENV = "REPROBOOK_CLAIMS_DIR", "REPROBOOK_CHAPTER"
SECTION = "the-claims-checked"
"""The anchor of every chapter's claims section (its heading is "The claims, checked")."""


class ClaimNotHeld(AssertionError):
    """An asserted claim did not hold in the ``book`` or ``full`` profile."""


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, checked on this run.

    ``paper``: the paper's own figure with its source (table or section), or ``"direction only"`` when the paper
    gives none that applies at this scale. ``asserted``: asserted in ``book``/``full`` (else reported).
    """

    id: str
    chapter: str
    statement: str
    measured: float
    comparison: str
    threshold: float
    unit: str
    fmt: str
    paper: str
    asserted: bool
    holds: bool
    profile: str

    def _format(self, value: float) -> str:
        if math.isnan(value):
            return "undefined"
        return f"{value:{self.fmt}}" + (f" {self.unit}" if self.unit else "")

    @property
    def here(self) -> str:
        """The measured value, formatted with its unit."""
        return self._format(self.measured)

    @property
    def bar(self) -> str:
        """The comparison, e.g. ``>= 1.50 dB``."""
        return f"{self.comparison} {self._format(self.threshold)}"

    @property
    def verdict(self) -> str:
        return "holds" if self.holds else "does not hold"

    def summary(self) -> str:
        """One line: the claim's id, its verdict and the numbers, e.g. what a notebook cell ending in it shows."""
        checked = "asserted" if self.asserted else "reported"
        return f"claim {self.id}: {self.verdict} (measured {self.here}, needs {self.bar}; {checked})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's display of a cell's last value
        printer.text(self.summary())

    def row(self) -> dict[str, str]:
        """One line of a claims table."""
        return {
            "claim": self.statement,
            "paper": self.paper,
            "here": self.here,
            "threshold": self.bar,
            "held": "yes" if self.holds else "no",
            "checked": "asserted" if self.asserted else "reported",
        }


_CLAIMS: dict[str, Claim] = {}


def _chapter() -> str:
    return os.environ.get(CHAPTER_ENV, "").strip() or "notebook"


def claim(
    id: str,
    statement: str,
    *,
    measured: float,
    compare: str,
    threshold: float,
    unit: str = "",
    fmt: str = ".3g",
    paper: str = DIRECTION_ONLY,
    asserted: bool = True,
) -> Claim:
    """State, check, glue and record one claim (module docstring). Returns the :class:`Claim`."""
    if not id.isidentifier():
        raise ValueError(f"id must be a Python identifier (it is glued for the prose), got {id!r}")
    check_nonempty_text("statement", statement)
    check_nonempty_text("paper", paper)
    check_choice("compare", compare, COMPARISONS)
    measured, threshold = float(measured), float(threshold)
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    try:
        format(1.0, fmt)
    except ValueError as error:
        raise ValueError(f"fmt={fmt!r} is not a valid float format spec: {error}") from None
    holds = not math.isnan(measured) and COMPARISONS[compare](measured, threshold)
    record = Claim(
        id, _chapter(), statement, measured, compare, threshold, unit, fmt, paper, asserted, holds, profile()
    )
    _CLAIMS[id] = record
    glue(id, measured)
    glue(f"{id}_verdict", record.verdict)
    _write(record.chapter)
    if asserted and not holds and claims_checked():
        raise ClaimNotHeld(
            f"claim {id!r} ({statement}) does not hold in the {record.profile!r} profile: measured {record.here}, "
            f"required {record.bar}. Find out why before changing the threshold; a claim that does not hold at "
            "this scale is recorded with asserted=False and explained in the chapter."
        )
    return record


def recorded(chapter: str | None = None) -> list[Claim]:
    """The claims recorded in this session (of ``chapter``, default: the current one), in order."""
    chapter = _chapter() if chapter is None else chapter
    return [c for c in _CLAIMS.values() if c.chapter == chapter]


def _write(chapter: str) -> None:
    directory = os.environ.get(DIR_ENV, "").strip()
    if not directory:
        return
    path = Path(directory) / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps([asdict(c) for c in recorded(chapter)], indent=1)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(payload)
    temporary.replace(path)


def claims_table(chapter: str | None = None) -> Any:
    """The claims of ``chapter`` (default: this one) as a table: claim, paper, here, threshold, held, checked."""
    claims = recorded(chapter)
    if not claims:
        raise ValueError("no claim has been recorded in this chapter yet: call claim(...) first")
    return table([c.row() for c in claims])


def load_records(directory: str | Path) -> list[Claim]:
    """Every claim recorded under ``directory`` (one ``<chapter>.json`` per chapter), chapter by chapter."""
    claims = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            entries = json.loads(path.read_text())
            claims += [Claim(**entry) for entry in entries]
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a claims record ({error}); delete it and rebuild the chapter") from None
    return claims


def scoreboard(claims: Iterable[Claim], chapter_titles: dict[str, str] | None = None) -> Any:
    """The book's claims, one row each, with a link to the chapter's claims section (an HTML table)."""
    titles = chapter_titles or {}
    rows = []
    for c in claims:
        title = titles.get(c.chapter, c.chapter)
        rows.append({"chapter": f'<a href="{c.chapter}.html#{SECTION}">{title}</a>', **c.row(), "profile": c.profile})
    if not rows:
        raise ValueError("no claims recorded: build the chapters first (make book)")
    return table(rows)
