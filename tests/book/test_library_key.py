"""A chapter is re-executed when its own method package changes, not when another method's does (build_book)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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
        assert name in build_book.imported_methods(ROOT / "book" / f"{name}.ipynb", methods)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import reprobook.irn as irn\nfrom reprobook.data import images", {"irn"}),
        ("from reprobook import ilc, seek\nreprobook.profile", {"ilc", "seek"}),
        ("from reprobook import claims", set()),
    ],
)
def test_imported_methods_reads_both_import_forms(tmp_path: Path, source: str, expected: set[str]) -> None:
    notebook = tmp_path / "chapter.ipynb"
    notebook.write_text(source)
    assert build_book.imported_methods(notebook, {"irn", "ilc", "seek"}) == expected


def test_key_ignores_other_methods_but_not_shared_modules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for package in ("irn", "seek", "nn"):
        (tmp_path / "lib" / "reprobook" / package).mkdir(parents=True)
        (tmp_path / "lib" / "reprobook" / package / "model.py").write_text("x = 1\n")
    for name in ("pyproject.toml", "constraints.txt"):
        (tmp_path / name).write_text("")
    notebook = tmp_path / "irn.ipynb"
    notebook.write_text("from reprobook import irn")
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
