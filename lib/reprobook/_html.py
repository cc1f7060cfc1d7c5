"""The one HTML output type of the library: self-contained markup that notebooks render and the static book keeps.

It lives at the bottom layer so that a method's interactive view (the SEEK query explorer) can return one without
importing :mod:`reprobook.widgets`, which sits above the methods.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HTMLWidget:
    """A piece of self-contained HTML that notebooks render and the static book keeps."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:  # the plain-text fallback: not the (often megabytes of) HTML a second time
        return f"<HTMLWidget: {len(self.html):,} characters of HTML>"
