"""The book's sources: every chapter is listed, stored without outputs, and opens the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
NOTEBOOKS = sorted((ROOT / "book").rglob("*.ipynb"))


def _toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_every_toc_entry_exists_and_every_page_is_listed():
    listed = _toc_files()
    missing = [f for f in listed if not any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb"))]
    assert not missing, f"_toc.yml lists missing files: {missing}"
    sources = {
        str(p.relative_to(ROOT).with_suffix("")) for p in (ROOT / "book").rglob("*") if p.suffix in (".md", ".ipynb")
    }
    assert sources - set(listed) == set(), "pages not in _toc.yml"


def test_execution_fails_the_build_on_a_failing_cell():
    assert CONFIG["execute"]["allow_errors"] is False
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_the_colab_cell_then_imports_reprobook(path: Path):
    cells = _cells(path)
    first = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "code" and "remove-cell" in cells[0]["metadata"].get("tags", [])
    assert 'if "google.colab" in sys.modules:' in first, "the install must be skipped outside Colab"
    assert f"git+{CONFIG['repository']['url']}" in first, "Colab installs from the repository URL in _config.yml"
    code = [c for c in cells[1:] if c["cell_type"] == "code"]
    assert "import reprobook" in "".join(code[0]["source"]) or "from reprobook" in "".join(code[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_title_and_audience_note(path: Path):
    markdown = [c for c in _cells(path) if c["cell_type"] == "markdown"]
    text = "".join(markdown[0]["source"])
    assert text.startswith("# "), f"{path.name}: the first markdown cell must open with the title"
    assert "Audience & objectives" in text
