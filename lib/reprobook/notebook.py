"""Helpers for the chapters' notebooks: glue computed numbers into the prose.

In the built book, ``glue("irn_psnr", 41.2)`` makes ``{glue:text}`irn_psnr:.2f``` in a Markdown
cell show the number this run computed, so no result is ever typed into the text. Outside the
book build (JupyterLab, Colab without myst-nb) the value is simply displayed when asked.
"""

from __future__ import annotations

from typing import Any

from IPython.display import display


def glue(name: str, value: Any, *, show: bool = False) -> Any:
    """Register ``value`` under ``name`` for ``{glue:...}`` roles; display it too if ``show``."""
    if not name.isidentifier():
        raise ValueError(f"name must be a Python identifier (used in {{glue:}} roles), got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # Colab, or a plain Jupyter: no book to glue into
        if show:
            display(value)
        return value
    myst_glue(name, value, display=show)
    return value
