"""Execute the book's chapters with live progress, then build the HTML book from the executed copies.

``make book`` and ``make test`` call this. For each page of ``_toc.yml`` that is a notebook, in order:

* if an executed copy for the same code cells (the prose may differ: it is taken from the notebook), library (the
  shared modules and the method packages the notebook imports), pins and profile is cached under
  ``<out>/executed/<profile>/``, it is reused (``--chapters`` forces re-execution of the named ones);
* otherwise the notebook runs in a fresh kernel (nbclient) with ``REPROBOOK_PROFILE``, ``REPROBOOK_CHAPTER``,
  ``REPROBOOK_CLAIMS_DIR`` (where :mod:`reprobook.claims` records the chapter's claims) and
  ``REPROBOOK_PROGRESS=text`` set; the terminal shows the chapter (k of N), the cell, the elapsed time and the
  chapter's latest progress-bar line. A failing cell stops the build and prints its traceback.

The Scoreboard page (``book/scoreboard.ipynb``) runs last, always, and reads the claims every chapter recorded.
The executed notebooks go into a copy of the sources (``<out>/src``) that Jupyter Book builds with execution off;
the HTML lands in ``<out>/html``, the claims in ``<out>/claims.json``, each chapter's time in
``--times`` (``_build/times-book.txt``).

    python tools/build_book.py --profile book --out _build                 # what `make book` runs
    python tools/build_book.py --profile book --out _build --chapters irn
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
ALWAYS = ("book/scoreboard",)  # re-executed on every build: it summarises the others
CELL_TIMEOUT = 1800


def toc_pages() -> list[str]:
    """Every page of ``_toc.yml`` in reading order, as paths without suffix (``book/irn``)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


LIBRARY = ROOT / "lib" / "reprobook"
IMPORTED = re.compile(r"reprobook\.(\w+)|from reprobook import ([\w, ]+)")


def method_packages() -> set[str]:
    """The library's method packages: the subpackages a chapter of the same name teaches (``irn``, ``ilc``, ...)."""
    chapters = {Path(page).name for page in toc_pages() if (ROOT / f"{page}.ipynb").exists()}
    return {path.name for path in LIBRARY.iterdir() if path.is_dir() and path.name in chapters}


def imported_methods(nb: Any, methods: set[str]) -> set[str]:
    """The method packages a parsed notebook's code cells name (``reprobook.irn``, ``from reprobook import irn``);
    its prose does not count, as prose does not re-execute a chapter."""
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    names: set[str] = set()
    for module, listed in IMPORTED.findall(code):
        names |= {module} if module else {name.strip() for name in listed.split(",")}
    return names & methods


def library_key(nb: Any) -> str:
    """A hash of everything outside the parsed notebook ``nb`` that its outputs depend on: the library and the pins.

    The method packages the notebook does not import are left out (method packages never import each other,
    METHODS.md), so a change to one method re-executes its own chapter, the chapters that use it and the
    Scoreboard, not the whole book; a change anywhere else in the library re-executes every chapter.
    """
    methods = method_packages()
    skipped = {LIBRARY / name for name in methods - imported_methods(nb, methods)}
    digest = hashlib.sha256()
    for path in sorted((ROOT / "lib").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not skipped & set(path.parents):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def format_seconds(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


class Status:
    """One status line: rewritten in place on a terminal, printed every ``interval`` seconds in a log."""

    def __init__(self, interval: float = 20.0) -> None:
        self.tty = sys.stdout.isatty()
        self.interval, self.last_print, self.text = interval, 0.0, ""

    def update(self, text: str, force: bool = False) -> None:
        self.text = text
        now = time.monotonic()
        if self.tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            sys.stdout.write("\r" + text[:width].ljust(width))
            sys.stdout.flush()
        elif force or now - self.last_print >= self.interval:
            print(text, flush=True)
            self.last_print = now

    def done(self, text: str) -> None:
        if self.tty:
            sys.stdout.write("\r" + " " * (shutil.get_terminal_size((120, 20)).columns - 1) + "\r")
        print(text, flush=True)


class ProgressClient(NotebookClient):
    """An nbclient that reports the running cell and the latest progress-bar line of the chapter."""

    def __init__(self, nb: Any, label: str, status: Status, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.label, self.status, self.started = label, status, time.monotonic()
        self.code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        self.current, self.bar = 0, ""
        self.on_cell_start = self._cell_started
        self.running = threading.Event()

    def heartbeat(self) -> None:
        """Refresh the status line while a long cell prints nothing."""
        while not self.running.wait(5.0):
            self._report()

    def _report(self, force: bool = False) -> None:
        elapsed = format_seconds(time.monotonic() - self.started)
        cell = f"cell {self.current}/{len(self.code_cells)}"
        self.status.update(f"{self.label}  {cell}  {elapsed}  {self.bar}".rstrip(), force)

    def _cell_started(self, cell: Any, cell_index: int) -> None:
        self.current = self.code_cells.index(cell_index) + 1 if cell_index in self.code_cells else self.current
        self.bar = ""
        self._report()

    def output(self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        if msg["msg_type"] == "stream":
            segments = [s.strip() for s in re.split(r"[\r\n]", msg["content"].get("text", "")) if s.strip()]
            if segments:
                self.bar = segments[-1][:90]
                self._report()
        return super().output(outs, msg, display_id, cell_index)


BAR = re.compile(r"^(.*?):\s+\d+%\|")  # a tqdm text bar: "<description>: 42%|####  | 5/12 [...]"


def collapse_progress(nb: Any) -> None:
    """Keep what a terminal would show of each stream output: the text after the last ``\\r`` of every line, and
    of consecutive lines of the same progress bar only the last (a bar leaves its final state, not its updates).

    Consecutive stream outputs of one stream are merged first: the kernel sends each redraw of a bar as its own
    output (``"\\r"``, then the line), which a terminal, but not a page, draws over the previous one."""
    for cell in nb.cells:
        merged: list[Any] = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (
                output.get("output_type") == "stream"
                and previous is not None
                and previous.get("output_type") == "stream"
                and previous.get("name") == output.get("name")
            ):
                previous["text"] = previous["text"] + output["text"]
            else:
                merged.append(output)
        if "outputs" in cell:
            cell["outputs"] = merged
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream":
                continue
            lines = [line.rstrip("\r").split("\r")[-1] for line in output["text"].split("\n")]
            kept: list[str] = []
            for line in lines:
                bar = BAR.match(line)
                previous = BAR.match(kept[-1]) if kept else None
                if bar and previous and bar.group(1) == previous.group(1):
                    kept[-1] = line
                else:
                    kept.append(line)
            output["text"] = "\n".join(kept)


def code_fingerprint(nb: Any) -> bytes:
    """What a chapter's outputs depend on inside its notebook: the code cells' sources, in order. The prose does
    not count, so a change to a markdown cell reuses the executed copy (:func:`with_current_prose`)."""
    return json.dumps([cell.source for cell in nb.cells if cell.cell_type == "code"]).encode()


def with_current_prose(executed: Any, source: Any) -> Any:
    """``source``'s cells with the outputs of ``executed``, which ran the same code cells (:func:`code_fingerprint`):
    prose and cell metadata (tags) from ``source``, each code cell's outputs from ``executed``."""
    ran = iter([cell for cell in executed.cells if cell.cell_type == "code"])
    cells = []
    for cell in source.cells:
        if cell.cell_type == "code":
            cell = nbformat.from_dict({**next(ran), "metadata": cell.metadata})
        cells.append(cell)
    return nbformat.from_dict({**executed, "cells": cells})


def execute(source: Path, target: Path, label: str, env: dict[str, str], status: Status) -> float:
    """Run ``source`` in a fresh kernel (working directory: its folder) and write the executed copy to ``target``."""
    nb = nbformat.read(source, as_version=4)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits the build's environment
    start = time.monotonic()
    try:
        client = ProgressClient(
            nb,
            label,
            status,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(source.parent)}},
            record_timing=False,
        )
        beat = threading.Thread(target=client.heartbeat, daemon=True)
        beat.start()
        try:
            client.execute()
        finally:
            client.running.set()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    seconds = time.monotonic() - start
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=os.environ.get("REPROBOOK_PROFILE", "book"))
    parser.add_argument(
        "--out", default="_build", help="a folder named _build: html/, src/, executed/, claims/ go in it"
    )
    parser.add_argument("--chapters", default="", help="comma-separated chapter names to re-execute (e.g. irn)")
    parser.add_argument("--times", default="_build/times-book.txt", help="file the chapter times are appended to")
    parser.add_argument("--no-html", action="store_true", help="execute only; do not run Jupyter Book")
    args = parser.parse_args(argv)

    out = (ROOT / args.out).resolve()
    if out.name != "_build":
        parser.error(f"--out must be a folder named _build (Jupyter Book writes <parent>/_build/html), got {args.out}")
    src, cache = out / "src", out / "executed" / args.profile
    claims_dir = out / "claims" / args.profile
    forced = {name.strip() for name in args.chapters.split(",") if name.strip()}
    pages = toc_pages()
    notebooks = [p for p in pages if (ROOT / f"{p}.ipynb").exists()]
    unknown = forced - {Path(p).name for p in notebooks}
    if unknown:
        print(f"--chapters names unknown chapters {sorted(unknown)}; chapters: {[Path(p).name for p in notebooks]}")
        return 2

    # The sources Jupyter Book reads: a copy of the book with execution off (outputs come from the runs below).
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(ROOT / "book", src / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(ROOT / "_toc.yml", src / "_toc.yml")
    shutil.copytree(ROOT / "_static", src / "_static")  # the book's own CSS (Jupyter Book adds every file)
    config = (ROOT / "_config.yml").read_text()
    (src / "_config.yml").write_text(re.sub(r"(?m)^  execute_notebooks: .*$", '  execute_notebooks: "off"', config))

    times: list[tuple[str, float, str]] = []
    status = Status()
    env = {
        "REPROBOOK_PROFILE": args.profile,
        "REPROBOOK_CLAIMS_DIR": str(claims_dir),
        "REPROBOOK_PROGRESS": "text",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    ordered = [p for p in notebooks if p not in ALWAYS] + [p for p in notebooks if p in ALWAYS]
    for number, page in enumerate(ordered, start=1):
        name = Path(page).name
        source, cached = ROOT / f"{page}.ipynb", cache / f"{name}.ipynb"
        source_nb = nbformat.read(source, as_version=4)
        key = f"{library_key(source_nb)}|{args.profile}".encode()
        page_key = hashlib.sha256(key + code_fingerprint(source_nb)).hexdigest()
        label = f"[{number}/{len(notebooks)}] {name}"
        fresh = cached.exists() and nbformat.read(cached, as_version=4).metadata.get("reprobook_key") == page_key
        claims_file = claims_dir / f"{name}.json"
        if fresh and name not in forced and page not in ALWAYS:
            times.append((name, 0.0, "cached"))
            stored = nbformat.read(cached, as_version=4).metadata.get("reprobook_claims")
            if stored is not None:  # the claims of the run that made the cached copy
                claims_dir.mkdir(parents=True, exist_ok=True)
                claims_file.write_text(stored)
            status.done(f"{label}: unchanged, executed copy reused")
        else:
            status.update(f"{label}  starting", force=True)
            claims_file.unlink(missing_ok=True)
            try:
                seconds = execute(source, cached, label, {**env, "REPROBOOK_CHAPTER": name}, status)
            except CellExecutionError as error:
                status.done(f"{label}: FAILED")
                print(str(error)[-6000:])
                return 1
            executed = nbformat.read(cached, as_version=4)
            executed.metadata["reprobook_key"] = page_key
            if claims_file.exists():
                executed.metadata["reprobook_claims"] = claims_file.read_text()
            nbformat.write(executed, cached)
            times.append((name, seconds, "executed"))
            status.done(f"{label}: executed in {format_seconds(seconds)}")
        shown = with_current_prose(nbformat.read(cached, as_version=4), source_nb)
        collapse_progress(shown)  # also tidies copies cached by an older build
        nbformat.write(shown, src / f"{page}.ipynb")

    records = []
    for path in sorted(claims_dir.glob("*.json")):
        records += json.loads(path.read_text())
    (out / "claims.json").write_text(json.dumps({"profile": args.profile, "claims": records}, indent=1))

    lines = [f"{seconds:7.0f} s  chapter {name} ({how}, {args.profile} profile)" for name, seconds, how in times]
    times_file = ROOT / args.times
    times_file.parent.mkdir(parents=True, exist_ok=True)
    with times_file.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
    print("Chapter times:\n" + "\n".join(lines))
    if args.no_html:
        return 0
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", "--all", "-W", "--keep-going", str(src)]
    command += ["--path-output", str(out.parent), "--quiet"]  # warnings and errors only (-W makes them fatal)
    print(f"Building the HTML with Jupyter Book into {out / 'html'} ...", flush=True)
    code = subprocess.call(command)
    if code == 0:
        print(f"The book is at {out / 'html' / 'index.html'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
