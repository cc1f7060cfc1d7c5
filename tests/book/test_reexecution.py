"""What re-executes a chapter (tools/build_book.py): its code cells, its own method package, a shared module; not its
prose, not another method's package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
assert _spec is not None and _spec.loader is not None
build_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_book)


def test_every_method_chapter_imports_its_own_package() -> None:
    methods = build_book.method_packages()
    assert {"irn", "fastspeech2", "seek"} <= methods and not {"data", "kernels", "nn"} & methods
    for name in methods:
        chapter = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
        assert name in build_book.imported_methods(chapter, methods)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import reprobook.irn as irn\nfrom reprobook.data import images", {"irn"}),
        ("from reprobook import ilc, seek\nreprobook.profile", {"ilc", "seek"}),
        ("from reprobook import claims", set()),
    ],
)
def test_imported_methods_reads_both_import_forms(source: str, expected: set[str]) -> None:
    assert build_book.imported_methods(_notebook(("code", source)), {"irn", "ilc", "seek"}) == expected


def test_imported_methods_ignore_prose() -> None:
    nb = _notebook(("markdown", "Unlike `reprobook.seek`, from reprobook import ilc"), ("code", "import reprobook.irn"))
    assert build_book.imported_methods(nb, {"irn", "ilc", "seek"}) == {"irn"}


def test_key_ignores_other_methods_but_not_shared_modules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for package in ("irn", "seek", "nn"):
        (tmp_path / "lib" / "reprobook" / package).mkdir(parents=True)
        (tmp_path / "lib" / "reprobook" / package / "model.py").write_text("x = 1\n")
    for name in ("pyproject.toml", "constraints.txt"):
        (tmp_path / name).write_text("")
    notebook = _notebook(("code", "from reprobook import irn"))
    monkeypatch.setattr(build_book, "ROOT", tmp_path)
    monkeypatch.setattr(build_book, "LIBRARY", tmp_path / "lib" / "reprobook")
    monkeypatch.setattr(build_book, "method_packages", lambda: {"irn", "seek"})

    before = build_book.library_key(notebook)
    (tmp_path / "lib" / "reprobook" / "seek" / "model.py").write_text("x = 2\n")
    assert build_book.library_key(notebook) == before
    for package in ("irn", "nn"):
        (tmp_path / "lib" / "reprobook" / package / "model.py").write_text("x = 3\n")
        assert build_book.library_key(notebook) != before
        before = build_book.library_key(notebook)


def _notebook(*cells: tuple[str, str]) -> nbformat.NotebookNode:
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}
    return nbformat.v4.new_notebook(cells=[make[kind](text) for kind, text in cells])


def test_prose_does_not_change_the_fingerprint_but_code_does() -> None:
    base = _notebook(("markdown", "# Title"), ("code", "x = 1"))
    reworded = _notebook(("markdown", "# A better title"), ("code", "x = 1"))
    recoded = _notebook(("markdown", "# Title"), ("code", "x = 2"))
    assert build_book.code_fingerprint(base) == build_book.code_fingerprint(reworded)
    assert build_book.code_fingerprint(base) != build_book.code_fingerprint(recoded)


def test_reused_copy_shows_the_current_prose_tags_and_the_old_outputs() -> None:
    executed = _notebook(("markdown", "old words"), ("code", "print(1)"), ("code", "x = 2"))
    executed.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    executed.metadata["reprobook_key"] = "k"
    source = _notebook(("markdown", "new words"), ("code", "print(1)"), ("markdown", "more"), ("code", "x = 2"))
    source.cells[3].metadata["tags"] = ["remove-input"]
    shown = build_book.with_current_prose(executed, source)
    assert [c.source for c in shown.cells] == ["new words", "print(1)", "more", "x = 2"]
    assert shown.cells[1].outputs[0]["text"] == "1\n" and shown.cells[3].metadata["tags"] == ["remove-input"]
    assert shown.metadata["reprobook_key"] == "k" and executed.cells[0].source == "old words"
