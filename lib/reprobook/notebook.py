"""Helpers for the chapters' notebooks: glue computed numbers into the prose, show tables and sources.

* :func:`glue` -- in the built book, ``glue("irn_psnr", 41.2)`` makes ``{glue:text}`irn_psnr:.2f``` in a Markdown
  cell show the number this run computed, so no result is ever typed into the text.
* :func:`table` -- a results table that renders as a table everywhere (the built book, JupyterLab, Colab): a
  pandas ``Styler`` with the number formats applied, never Markdown pipes.
* :func:`show_source` -- the code of a library function beside the equation it implements, without its docstring.
"""

from __future__ import annotations

import html
import inspect
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from IPython.display import display

from reprobook.train import plain_log_ticks as plain_log_ticks  # a chapter helper; History.plot uses it too


def glue(name: str, value: Any, *, show: bool = False) -> None:
    """Register ``value`` under ``name`` for ``{glue:...}`` roles; display it too if ``show``.

    Returns nothing, so a cell that ends with a ``glue`` call prints no stray value. Outside the book build
    (JupyterLab, Colab: no ``REPROBOOK_CHAPTER`` in the environment) the ``{glue:text}`` roles of the prose do not
    render, so each glued value is also shown under the cell that computes it, as a small grey ``name = value``.
    """
    if not name.isidentifier():
        raise ValueError(f"name must be a Python identifier (used in {{glue:}} roles), got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # Colab, or a plain Jupyter: no book to glue into
        myst_glue = None
    if myst_glue is not None:
        myst_glue(name, value, display=show)
    elif show:
        display(value)
    if not show and not os.environ.get("REPROBOOK_CHAPTER", "").strip():
        display(GluedValue(name, value))


@dataclass(frozen=True)
class GluedValue:
    """How a glued value shows in JupyterLab and Colab: ``name = value``, small and grey."""

    name: str
    value: Any

    def __repr__(self) -> str:
        value = f"{self.value:.4g}" if isinstance(self.value, float) else str(self.value)
        return f"{self.name} = {value}"

    def _repr_html_(self) -> str:
        return f'<span style="color:#888;font-size:0.8em">{html.escape(repr(self))}</span>'


def table(
    rows: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
    formats: Mapping[str, str] | None = None,
    *,
    index: str | None = None,
    caption: str | None = None,
) -> Any:
    """A results table: one row per mapping, one column per key, numbers formatted per column.

    ``rows``: a list of row mappings (e.g. ``[scores.row() for scores in ...]``), or a mapping from row label to
    row mapping. ``formats``: ``{column: "{:.2f}"}``-style format strings (columns not listed show as they are;
    missing values as blanks). ``index``: a column to use as the row labels. Returns a pandas ``Styler``, which
    renders as an HTML ``<table>`` in the built book, JupyterLab and Colab; ``.data`` is the ``DataFrame``.
    """
    import pandas as pd

    if isinstance(rows, Mapping):
        frame = pd.DataFrame.from_dict({str(k): dict(v) for k, v in rows.items()}, orient="index")
    else:
        frame = pd.DataFrame([dict(row) for row in rows])
        if index is not None:
            frame = frame.set_index(index)
            frame.index.name = None
    unknown = sorted(set(formats or {}) - set(frame.columns))
    if unknown:
        raise ValueError(f"formats names columns the table does not have: {unknown}; columns: {list(frame.columns)}")
    styler = frame.style.format(dict(formats or {}), na_rep="")
    if isinstance(rows, Mapping) or index is not None:
        return styler.set_caption(caption) if caption else styler
    styler = styler.hide(axis="index")
    return styler.set_caption(caption) if caption else styler


def show_source(obj: Any) -> None:
    """Print the code of a library function, method or class, without its docstring (the chapter's prose says
    what the docstring would)."""
    source = textwrap.dedent(inspect.getsource(obj))
    doc = inspect.getdoc(obj) if getattr(obj, "__doc__", None) else None
    if doc:
        for quotes in ('"""', "'''"):
            start = source.find(quotes)
            if start != -1:
                end = source.index(quotes, start + 3) + 3
                line_start = source.rindex("\n", 0, start) + 1
                source = source[:line_start] + source[end:].lstrip("\n")
                break
    print(source.rstrip())
