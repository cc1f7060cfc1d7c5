"""The library imports only downward: a method never reaches into another method, a kernel into a method.

Layers, bottom to top (``lib/reprobook/METHODS.md``):

0. ``_validate``, ``_html``, ``profiles`` (and the package root, which re-exports ``profiles``)
1. ``kernels``
2. ``nn``, ``data``, ``metrics``, ``train``
3. the method packages (``irn``, ``mat``, ...): none imports another
4. ``widgets``, ``notebook``, ``claims``

Every ``import reprobook...`` counts, including the ones inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import reprobook

PACKAGE = Path(reprobook.__file__).parent
LAYERS = {
    **dict.fromkeys(("_validate", "_html", "profiles", "__init__"), 0),
    "kernels": 1,
    **dict.fromkeys(("nn", "data", "metrics", "train"), 2),
    **dict.fromkeys(("widgets", "notebook", "claims"), 4),
}
METHOD_LAYER = 3


def layer_of(top: str) -> int:
    """The layer of a top-level module or subpackage of reprobook; anything unlisted is a method package."""
    return LAYERS.get(top, METHOD_LAYER)


def top_level(path: Path) -> str:
    """``lib/reprobook/irn/model.py`` -> ``irn``; ``lib/reprobook/train.py`` -> ``train``."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_tops(path: Path) -> list[tuple[int, str]]:
    """``(line, top-level reprobook module)`` of every reprobook import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "reprobook" else [f"reprobook.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "reprobook" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def upward_imports(path: Path) -> list[str]:
    here = top_level(path)
    problems = []
    for line, there in imported_tops(path):
        if there == here:
            continue
        if layer_of(there) > layer_of(here):
            problems.append(f"{path.relative_to(PACKAGE)}:{line} imports reprobook.{there} (a higher layer)")
        elif layer_of(here) == METHOD_LAYER and layer_of(there) == METHOD_LAYER:
            problems.append(f"{path.relative_to(PACKAGE)}:{line} imports the method reprobook.{there}")
    return problems


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_downward(path: Path) -> None:
    assert upward_imports(path) == []


def test_the_check_catches_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "reprobook"
    (fake / "kernels").mkdir(parents=True)
    bad = fake / "kernels" / "rank.py"
    bad.write_text("def f():\n    from reprobook.seek.scoring import seek_query\n")
    method = fake / "ilc" / "model.py"
    method.parent.mkdir()
    method.write_text("from reprobook.irn import IRN\nfrom reprobook.nn import count_parameters\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    assert upward_imports(bad) == ["kernels/rank.py:2 imports reprobook.seek (a higher layer)"]
    assert upward_imports(method) == ["ilc/model.py:1 imports the method reprobook.irn"]
