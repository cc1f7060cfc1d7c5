"""JupyterLab end to end: two chapters open in one window, Run All in the ``smoke`` profile, as a reader would.

Starts JupyterLab from the ``.venv`` on a free loopback port (a temporary copy of the chapters, so nothing is
saved into the repository), drives it with headless Chromium, and checks what a reader sees: no error output,
each chapter's image slider moves its own images, the audio players have sources, the MyST admonition renders
and the glued numbers are readable. Locally a missing Chromium skips; under ``CI=true`` it fails.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHAPTERS = ("using.ipynb", "irn.ipynb")  # both have an image slider; "Using this book" has audio players
RUN_TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a running JupyterLab (token included) serving a copy of the chapters."""
    if not (os.environ.get("REPROBOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")):
        if IN_CI:
            pytest.fail("no Chromium found (CI=true: the JupyterLab test must run)")
        pytest.skip("no Chromium found (install the 'chromium' OS package or set REPROBOOK_CHROMIUM)")
    home = tmp_path_factory.mktemp("lab")
    for name in CHAPTERS:
        shutil.copy(ROOT / "book" / name, home / name)
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "REPROBOOK_CHAPTER"}  # not a book build: glue shows values
    env |= {
        "REPROBOOK_PROFILE": "smoke",
        "JUPYTERLAB_SETTINGS_DIR": str(home / ".settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / ".workspaces"),
    }
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1"]
    command += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    command += [f"--ServerApp.root_dir={home}", "--LabApp.expose_app_in_browser=True", "--allow-root"]
    # Offline, as the test machine is: no update check, no news feed, no extension manager queries.
    command += ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None"]
    command += ["--LabApp.extension_manager=readonly"]
    log = (home / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(home / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"{url}/lab?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


RUN_ALL = """async (names) => {
    const app = window.jupyterapp;
    await app.restored;
    const ids = [];
    for (const name of names) {  // "run all" acts on the current notebook: the one just opened
        const panel = await app.commands.execute('docmanager:open', {path: name, factory: 'Notebook'});
        await panel.context.ready;
        await panel.sessionContext.ready;
        app.commands.execute('notebook:run-all-cells');  // not awaited: the test polls, with a timeout
        ids.push(panel.id);
    }
    return ids;
}"""

ERRORS = """(id) => {
    const panel = Array.from(window.jupyterapp.shell.widgets('main')).find((w) => w.id === id);
    const found = [];
    for (const cell of panel.content.model.cells) {
        if (cell.type !== 'code') continue;
        for (const output of cell.outputs.toJSON()) {
            if (output.output_type === 'error') found.push(output.ename + ': ' + output.evalue);
        }
    }
    return found;
}"""

PROGRESS = """(id) => {
    const panel = Array.from(window.jupyterapp.shell.widgets('main')).find((w) => w.id === id);
    const cells = Array.from(panel.content.model.cells).filter((c) => c.type === 'code');
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return [cells.filter((c) => c.executionCount !== null).length, cells.length, kernel ? kernel.status : 'none'];
}"""


def _wait_until_run(page, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Poll each notebook until every code cell has run and its kernel is idle; fail with the progress."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        progress = [page.evaluate(PROGRESS, panel_id) for panel_id in ids]
        if all(done == total and status == "idle" for done, total, status in progress):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"Run All did not finish in {RUN_TIMEOUT_S} s: (cells run, code cells, kernel) {progress}")
        time.sleep(1)


def _drag(page, panel, fraction: float) -> None:  # type: ignore[no-untyped-def]
    slider = panel.locator(".reprobook-compare input[type=range]").first
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    assert box is not None, "the slider is not visible"
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fraction, y, steps=8)
    page.mouse.up()


def _split(panel) -> str:  # type: ignore[no-untyped-def]
    return panel.locator(".reprobook-compare-top").first.evaluate("e => e.style.clipPath")


def test_two_chapters_run_and_read_in_jupyterlab(lab: str) -> None:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("REPROBOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(lab)
        page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
        ids = page.evaluate(RUN_ALL, list(CHAPTERS))
        _wait_until_run(page, ids)
        errors = {name: page.evaluate(ERRORS, panel_id) for name, panel_id in zip(CHAPTERS, ids)}
        assert errors == {name: [] for name in CHAPTERS}, f"error outputs: {errors}"

        panels = {name: page.locator(f"#{panel_id}") for name, panel_id in zip(CHAPTERS, ids)}
        for name, fraction in (("using.ipynb", 0.1), ("irn.ipynb", 0.9)):
            page.evaluate("(id) => window.jupyterapp.shell.activateById(id)", ids[CHAPTERS.index(name)])
            others = {other: _split(panel) for other, panel in panels.items() if other != name}
            before = _split(panels[name])
            _drag(page, panels[name], fraction)
            assert _split(panels[name]) != before, f"{name}: dragging its slider did not move its images"
            assert {o: _split(p) for o, p in panels.items() if o != name} == others, (
                f"dragging {name}'s slider moved another chapter's images"
            )

        using = panels["using.ipynb"]
        page.evaluate("(id) => window.jupyterapp.shell.activateById(id)", ids[0])
        sources = using.locator("audio").evaluate_all("players => players.map((a) => a.currentSrc || a.src)")
        assert sources and all(s.startswith("data:audio") for s in sources), f"audio players: {sources[:2]}"
        assert using.locator("audio[autoplay]").count() == 0, "an audio player autoplays"

        irn = panels["irn.ipynb"]
        page.evaluate("(id) => window.jupyterapp.shell.activateById(id)", ids[1])
        prose = irn.locator(".jp-MarkdownCell").first.inner_text()  # rendered by jupyterlab-myst
        assert ":::" not in prose and "Audience & objectives" in prose, f"the admonition shows raw: {prose[:200]}"
        outputs = " ".join(irn.locator(".jp-OutputArea-output").all_inner_texts())
        assert re.search(r"\b[a-z]\w* = -?\d", outputs), "no glued number is readable under the cells that glue"
        browser.close()
