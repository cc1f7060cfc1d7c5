"""The built page shows each progress bar once, in its final state (tools/build_book.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
assert _spec is not None and _spec.loader is not None
build_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_book)


def _stream(name: str, text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_redraws_sent_as_separate_outputs_collapse_to_the_final_bar() -> None:
    cell = nbformat.v4.new_code_cell("fit(...)")
    cell.outputs = [
        _stream("stderr", "\r"),
        _stream("stderr", "runs:   0%|          | 0/16 [00:00<?, ?it/s]"),
        _stream("stderr", "\r"),
        _stream("stderr", "runs:  50%|#####     | 8/16 [00:03<00:03, 2.0it/s]"),
        _stream("stderr", "\rruns: 100%|##########| 16/16 [00:06<00:00, 2.0it/s]\n"),
        _stream("stdout", "slope 3.03\n"),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    build_book.collapse_progress(notebook)
    texts = [(o["name"], o["text"]) for o in notebook.cells[0].outputs]
    assert texts == [("stderr", "runs: 100%|##########| 16/16 [00:06<00:00, 2.0it/s]\n"), ("stdout", "slope 3.03\n")]


def test_two_bars_and_other_lines_are_kept() -> None:
    cell = nbformat.v4.new_code_cell("fit(...)")
    cell.outputs = [
        _stream("stderr", "IRN:  50%|#  | 1/2\rIRN: 100%|## | 2/2\n"),
        _stream("stderr", "SR: 100%|## | 2/2\n"),
        _stream("stderr", "a warning\n"),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    build_book.collapse_progress(notebook)
    assert notebook.cells[0].outputs[0]["text"] == "IRN: 100%|## | 2/2\nSR: 100%|## | 2/2\na warning\n"
