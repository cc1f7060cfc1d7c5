"""The slider explorer: plain HTML with four sliders and two panels; its script's maths agrees with the library's
theory (run in Node.js when it is installed); the static figure draws."""

from __future__ import annotations

import json
import shutil
import subprocess

import matplotlib
import numpy as np
import pytest

from reprobook._html import HTMLWidget
from reprobook.powerlaw import Basin, explorer, explorer_figure, langevin, mean_exit_time, stationary_law
from reprobook.powerlaw.explorer import _SCRIPT, SLIDERS

matplotlib.use("Agg")


def test_widget_markup() -> None:
    widget = explorer(batch_size=2, lr=0.25, sharpness=1.0, barrier=3.0)
    assert isinstance(widget, HTMLWidget)
    markup = widget.html
    assert markup.count('type="range"') == len(SLIDERS) == 4
    assert markup.count("<path") == 6 and "rbPowerlawExplorer" in markup
    assert ' d=""' not in markup  # every curve is drawn for the starting values, without the script
    with pytest.raises(ValueError, match="barrier"):
        explorer(barrier=1000.0)
    with pytest.raises(ValueError, match="beyond stability"):
        explorer(lr=1.0, sharpness=2.0)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_script_maths_matches_the_theory() -> None:
    basin = Basin.sgd(2.0, 1, 0.5, 1.0)
    bars, us = [0.3, 1.0, 4.0, 30.0, 100.0], [0.01, 0.5, 3.0, 50.0]
    call = f"""var window = {{}};
{_SCRIPT}
var M = window.rbPowerlawMath;
console.log(JSON.stringify([M.logExit(0.5, 2, 4, 4, {bars}, 4000), M.logExit(0.5, 2, 4, 0, {bars}, 4000),
  {us}.map(function (u) {{ return M.logPdf(0.5, 2, 4, 4, u); }}),
  {us}.map(function (u) {{ return M.logPdf(0.5, 2, 4, 0, u); }})]));"""
    out = json.loads(subprocess.run(["node", "-e", call], capture_output=True, text=True, check=True).stdout)
    for got, b in ((out[0], basin), (out[1], langevin(basin))):
        np.testing.assert_allclose(got, np.log10([mean_exit_time(b, x) for x in bars]), atol=5e-3)
    np.testing.assert_allclose(out[2], np.log10(stationary_law(basin).pdf(us)), atol=1e-10)
    np.testing.assert_allclose(out[3][:3], np.log10(stationary_law(langevin(basin)).pdf(us[:3])), atol=1e-10)


def test_static_figure() -> None:
    fig = explorer_figure(batch_sizes=(1, 2), lrs=(0.5,), sharpnesses=(2.0,), points=5)
    assert len(fig.axes) == 3 and all(ax.get_xscale() == "log" for ax in fig.axes)
    assert fig.axes[0].get_ylabel()


def test_default_static_figure_is_stable() -> None:
    """Every basin of the default sweeps satisfies lr * sharpness < 2 (the chapter draws the defaults)."""
    fig = explorer_figure(points=3)
    assert all(len(ax.get_lines()) == 6 for ax in fig.axes)
