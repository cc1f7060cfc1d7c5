"""Sliders for the SDE lab: batch size, learning rate, sharpness and barrier against the exact theory.

:func:`explorer` returns plain HTML (:class:`~reprobook._html.HTMLWidget`): four range sliders and two SVG panels,
the stationary density of the power-law dynamic beside Langevin's Gaussian, and the mean exit time against the
barrier for both. The panels are drawn in Python from :mod:`~reprobook.powerlaw.theory` for the starting values,
so the page shows them even where scripts do not run; moving a slider recomputes both panels in the browser (a
small script: the Student-t and Gaussian densities in closed form, the exit-time double integral by the
trapezoid rule on a grid of ``GRID`` points, in log space). No Jupyter kernel is needed: it works in the built
book, in JupyterLab (trusted output) and in Colab. :func:`explorer_figure` is the static figure of the same
dependence for print and for readers without scripts.

The basin is Mori et al.'s: ``L = L* + ½ h u²``, ``C = (2/B) L h`` (:meth:`~reprobook.powerlaw.dynamics.Basin.sgd`),
with ``L* = 1`` setting the unit of loss.
"""

from __future__ import annotations

import html
import itertools
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from reprobook._html import HTMLWidget
from reprobook.powerlaw.baselines import langevin
from reprobook.powerlaw.dynamics import Basin
from reprobook.powerlaw.theory import mean_exit_time, stationary_law

GRID = 4000
LOSS_MIN = 1.0
# Panel ranges (log10): |u| and p(u); ΔL and T.
DENSITY_X, DENSITY_Y = (-2.0, 2.0), (-8.0, 1.0)
EXIT_X, EXIT_Y = (-1.0, 2.0), (-2.0, 8.0)
WIDTH, HEIGHT, PAD = 330, 240, 46
SLIDERS = {  # name: (label, min, max, step)
    "batch": ("batch size B", 1, 16, 1),
    "lr": ("learning rate η", 0.05, 1.0, 0.05),
    "sharpness": ("sharpness h", 0.25, 4.0, 0.25),
    "log_barrier": ("barrier log10 ΔL", -1.0, 2.0, 0.05),
}
_ids = itertools.count()


def density_curves(basin: Basin, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stationary densities at ``u``: the power law's and its Langevin baseline's (same noise at the minimum)."""
    return stationary_law(basin).pdf(u), stationary_law(langevin(basin)).pdf(u)


def exit_curves(basin: Basin, barriers: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean exit times at ``barriers``: the power law's and its Langevin baseline's."""
    baseline = langevin(basin)
    return (
        np.array([mean_exit_time(basin, b) for b in barriers]),
        np.array([mean_exit_time(baseline, b) for b in barriers]),
    )


def _path(xs: np.ndarray, ys: np.ndarray, xr: tuple[float, float], yr: tuple[float, float]) -> str:
    """An SVG path through the points with finite, in-range log10 coordinates (a gap elsewhere)."""
    parts, pen = [], "M"
    with np.errstate(divide="ignore", invalid="ignore"):
        lx, ly = np.log10(xs), np.log10(ys)
    for x, y in zip(lx, ly):
        if not (np.isfinite(x) and np.isfinite(y)) or y < yr[0] or y > yr[1]:
            pen = "M"
            continue
        px = PAD + (x - xr[0]) / (xr[1] - xr[0]) * (WIDTH - PAD - 8)
        py = 8 + (yr[1] - y) / (yr[1] - yr[0]) * (HEIGHT - PAD - 8)
        parts.append(f"{pen}{px:.1f},{py:.1f}")
        pen = "L"
    return " ".join(parts)


def _axes(xr: tuple[float, float], yr: tuple[float, float], xlabel: str, ylabel: str) -> str:
    """Frame, decade ticks with labels, axis labels."""
    right, bottom = WIDTH - 8, HEIGHT - PAD
    out = [f'<rect x="{PAD}" y="8" width="{right - PAD}" height="{bottom - 8}" fill="none" stroke="#444"/>']
    for d in range(math.ceil(xr[0]), math.floor(xr[1]) + 1):
        px = PAD + (d - xr[0]) / (xr[1] - xr[0]) * (right - PAD)
        out.append(f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" stroke="#444"/>')
        out.append(f'<text x="{px:.1f}" y="{bottom + 15}" font-size="10" text-anchor="middle">1e{d}</text>')
    step = 2 if yr[1] - yr[0] > 6 else 1
    for d in range(math.ceil(yr[0]), math.floor(yr[1]) + 1, step):
        py = 8 + (yr[1] - d) / (yr[1] - yr[0]) * (bottom - 8)
        out.append(f'<line x1="{PAD - 4}" y1="{py:.1f}" x2="{PAD}" y2="{py:.1f}" stroke="#444"/>')
        out.append(f'<text x="{PAD - 6}" y="{py + 3:.1f}" font-size="10" text-anchor="end">1e{d}</text>')
    out.append(f'<text x="{(PAD + right) / 2}" y="{HEIGHT - 12}" font-size="11" text-anchor="middle">{xlabel}</text>')
    mid = (8 + bottom) / 2
    out.append(
        f'<text x="11" y="{mid}" font-size="11" text-anchor="middle" transform="rotate(-90 11 {mid})">{ylabel}</text>'
    )
    return "".join(out)


def _summary(basin: Basin, barrier: float, t_pl: float, t_lv: float) -> str:
    return (
        f"power law: φ = {basin.phi:.3g}, tail index ν = {basin.tail_index:.3g}, exit exponent "
        f"{basin.exit_exponent:.3g}; at ΔL = {barrier:.3g}: T = {t_pl:.3g} (power law), {t_lv:.3g} (Langevin)"
    )


_SCRIPT = r"""
window.rbPowerlawMath = window.rbPowerlawMath || (function () {
  var lg = function (x) {  // log Gamma, Lanczos (g = 7, n = 9)
    var g = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
      -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
    if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lg(1 - x);
    x -= 1; var a = g[0], t = x + 7.5;
    for (var i = 1; i < 9; i++) a += g[i] / (x + i);
    return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
  };
  var lse = function (a, b) { if (a === -Infinity) return b; if (b === -Infinity) return a;
    var m = Math.max(a, b); return m + Math.log(Math.exp(a - m) + Math.exp(b - m)); };
  return {
    // log10 of the stationary density at u: Student-t (c1 > 0) or Gaussian (c1 = 0); C = c0 + c1 h u^2 / 2
    logPdf: function (lr, h, c0, c1, u) {
      if (c1 === 0) {
        var v = lr * c0 / (2 * h);
        return (-u * u / (2 * v) - 0.5 * Math.log(2 * Math.PI * v)) / Math.LN10;
      }
      var nu = 1 + 4 / (lr * c1), s2 = c0 / (c1 * h / 2 * nu);
      return (lg((nu + 1) / 2) - lg(nu / 2) - 0.5 * Math.log(nu * Math.PI * s2)
        - (nu + 1) / 2 * Math.log1p(u * u / (nu * s2))) / Math.LN10;
    },
    // log10 of the mean exit times at barriers (ascending): the double integral, trapezoid rule in log space
    logExit: function (lr, h, c0, c1, bars, grid) {
      var amax = Math.sqrt(2 * bars[bars.length - 1] / h), dx = amax / grid, I = 0, lt = -Infinity;
      var Phi = function (x) { var q = h * x * x / 2;
        return c1 > 0 ? 2 / (lr * c1) * Math.log1p(c1 * q / c0) : 2 * q / (lr * c0); };
      var f = function (x) { return 2 / (lr * (c0 + c1 * h * x * x / 2)) * Math.exp(-Phi(x)); };
      var out = [], j = 0, prevJ = -Infinity, fPrev = f(0);
      for (var i = 1; i <= grid; i++) {
        var x = i * dx, fx = f(x); I += 0.5 * (fPrev + fx) * dx; fPrev = fx;
        var lJ = Phi(x) + Math.log(I);
        lt = lse(lt, lse(prevJ, lJ) + Math.log(0.5 * dx)); prevJ = lJ;
        while (j < bars.length && Math.sqrt(2 * bars[j] / h) <= x * (1 + 1e-12)) { out.push(lt / Math.LN10); j++; }
      }
      while (j < bars.length) { out.push(lt / Math.LN10); j++; }
      return out;
    }
  };
})();
window.rbPowerlawExplorer = window.rbPowerlawExplorer || function (uid) {
  var M = window.rbPowerlawMath, C = JSON.parse(document.getElementById(uid + '-cfg').textContent);
  var val = function (k) { return parseFloat(document.getElementById(uid + '-' + k).value); };
  var B = val('batch'), lr = val('lr'), h = val('sharpness'), dL = Math.pow(10, val('log_barrier'));
  ['batch', 'lr', 'sharpness', 'log_barrier'].forEach(function (k) {
    document.getElementById(uid + '-' + k + '-value').textContent = +(k === 'log_barrier' ? dL : val(k)).toPrecision(3);
  });
  var note = document.getElementById(uid + '-note');
  if (lr * h >= 2) { note.textContent = 'unstable: lr * h >= 2, gradient descent diverges'; return; }
  var c0 = 2 * h * C.loss_min / B, c1 = 2 * h / B, phi = 1 + 2 / (lr * c1);
  var path = function (xs, ys, xr, yr) {
    var d = [], pen = 'M';
    for (var i = 0; i < xs.length; i++) {
      var x = Math.log10(xs[i]), y = ys[i];
      if (!isFinite(x) || !isFinite(y) || y < yr[0] || y > yr[1]) { pen = 'M'; continue; }
      var px = C.pad + (x - xr[0]) / (xr[1] - xr[0]) * (C.width - C.pad - 8);
      var py = 8 + (yr[1] - y) / (yr[1] - yr[0]) * (C.height - C.pad - 8);
      d.push(pen + px.toFixed(1) + ',' + py.toFixed(1)); pen = 'L';
    }
    return d.join(' ');
  };
  var set = function (id, d) { document.getElementById(uid + '-' + id).setAttribute('d', d); };
  var us = C.density_u, bars = C.exit_barriers;
  set('pdf-pl', path(us, us.map(function (u) { return M.logPdf(lr, h, c0, c1, u); }), C.density_x, C.density_y));
  set('pdf-lv', path(us, us.map(function (u) { return M.logPdf(lr, h, c0, 0, u); }), C.density_x, C.density_y));
  set('exit-pl', path(bars, M.logExit(lr, h, c0, c1, bars, C.grid), C.exit_x, C.exit_y));
  set('exit-lv', path(bars, M.logExit(lr, h, c0, 0, bars, C.grid), C.exit_x, C.exit_y));
  var a = Math.sqrt(2 * dL / h), now = M.logExit(lr, h, c0, c1, [dL], C.grid)[0];
  var nowL = M.logExit(lr, h, c0, 0, [dL], C.grid)[0];
  set('bar-a', path([a, a], C.density_y, C.density_x, C.density_y));
  set('bar-dl', path([dL, dL], C.exit_y, C.exit_x, C.exit_y));
  var fmt = function (v) { return (+v.toPrecision(3)).toString(); };
  note.textContent = 'power law: \u03c6 = ' + fmt(phi) + ', tail index \u03bd = ' + fmt(2 * phi - 1)
    + ', exit exponent ' + fmt(phi - 0.5) + '; at \u0394L = ' + fmt(dL) + ': T = ' + fmt(Math.pow(10, now))
    + ' (power law), ' + fmt(Math.pow(10, nowL)) + ' (Langevin)';
};
"""


def explorer(
    batch_size: int = 1, lr: float = 0.5, sharpness: float = 2.0, barrier: float = 4.0, *, points: int = 61
) -> HTMLWidget:
    """The slider explorer (module docstring), starting from ``batch_size``, ``lr``, ``sharpness``, ``barrier``.

    ``points``: barriers on the exit-time curves (log-spaced over the panel).
    """
    basin = Basin.sgd(sharpness, batch_size, lr, LOSS_MIN)
    if not 0.1 <= barrier <= 100:
        raise ValueError(f"barrier={barrier!r} is out of range; expected 0.1 <= barrier <= 100 (the panel's range)")
    uid = f"rb-powerlaw-{next(_ids)}"
    us = np.logspace(*DENSITY_X, 161)
    bars = np.logspace(*EXIT_X, points)
    pdf_pl, pdf_lv = density_curves(basin, us)
    t_pl, t_lv = exit_curves(basin, bars)
    t_now, t_now_lv = exit_curves(basin, [barrier])
    a = basin.distance(barrier)
    config = {
        "loss_min": LOSS_MIN, "grid": GRID, "pad": PAD, "width": WIDTH, "height": HEIGHT,
        "density_x": DENSITY_X, "density_y": DENSITY_Y, "exit_x": EXIT_X, "exit_y": EXIT_Y,
        "density_u": us.tolist(), "exit_barriers": bars.tolist(),
    }  # fmt: skip
    style = 'fill="none" stroke-width="2"'
    density = (
        _axes(DENSITY_X, DENSITY_Y, "distance |u| from the minimum", "stationary density p(u)")
        + f'<path id="{uid}-pdf-pl" d="{_path(us, pdf_pl, DENSITY_X, DENSITY_Y)}" stroke="#c0392b" {style}/>'
        + f'<path id="{uid}-pdf-lv" d="{_path(us, pdf_lv, DENSITY_X, DENSITY_Y)}" stroke="#2471a3" {style}/>'
        + f'<path id="{uid}-bar-a" d="{_path(np.array([a, a]), 10.0 ** np.array(DENSITY_Y), DENSITY_X, DENSITY_Y)}"'
        ' stroke="#888" stroke-dasharray="4 3" fill="none"/>'
    )
    exits = (
        _axes(EXIT_X, EXIT_Y, "barrier ΔL (units of L*)", "mean exit time T")
        + f'<path id="{uid}-exit-pl" d="{_path(bars, t_pl, EXIT_X, EXIT_Y)}" stroke="#c0392b" {style}/>'
        + f'<path id="{uid}-exit-lv" d="{_path(bars, t_lv, EXIT_X, EXIT_Y)}" stroke="#2471a3" {style}/>'
        + f'<path id="{uid}-bar-dl" d="{_path(np.array([barrier] * 2), 10.0 ** np.array(EXIT_Y), EXIT_X, EXIT_Y)}"'
        ' stroke="#888" stroke-dasharray="4 3" fill="none"/>'
    )
    starts = {"batch": batch_size, "lr": lr, "sharpness": sharpness, "log_barrier": math.log10(barrier)}
    controls = []
    for key, (label, low, high, step) in SLIDERS.items():
        shown = barrier if key == "log_barrier" else starts[key]
        controls.append(
            f'<label style="display:inline-block;margin:0 1.2em 0.3em 0;font:13px sans-serif;">{html.escape(label)} '
            f'<input type="range" id="{uid}-{key}" min="{low}" max="{high}" step="{step}" value="{starts[key]:g}" '
            f'oninput="rbPowerlawExplorer(\'{uid}\')" style="vertical-align:middle;width:120px;"> '
            f'<span id="{uid}-{key}-value">{shown:.3g}</span></label>'
        )
    legend = (
        '<div style="font:12px sans-serif;margin:2px 0;"><span style="color:#c0392b;">━ power law, C = (2/B) L h</span>'
        ' &nbsp; <span style="color:#2471a3;">━ Langevin, constant C at the minimum</span>'
        ' &nbsp; <span style="color:#888;">┅ the barrier</span></div>'
    )
    svg = f'<svg width="{WIDTH}" height="{HEIGHT}" style="margin-right:10px;" xmlns="http://www.w3.org/2000/svg">'
    markup = (
        f'<div class="reprobook-powerlaw" id="{uid}" style="margin:0.5em 0;">'
        f"<div>{''.join(controls)}</div>{legend}"
        f"{svg}{density}</svg>{svg}{exits}</svg>"
        f'<div id="{uid}-note" style="font:12px sans-serif;">'
        f"{html.escape(_summary(basin, barrier, float(t_now[0]), float(t_now_lv[0])))}</div>"
        f'<script type="application/json" id="{uid}-cfg">{json.dumps(config)}</script>'
        f"<script>{_SCRIPT}</script></div>"
    )
    return HTMLWidget(markup)


def explorer_figure(
    batch_sizes: Sequence[int] = (1, 2, 4),
    lrs: Sequence[float] = (0.25, 0.5, 0.75),
    sharpnesses: Sequence[float] = (1.0, 2.0, 3.0),
    *,
    batch_size: int = 1,
    lr: float = 0.5,
    sharpness: float = 2.0,
    points: int = 25,
) -> Any:
    """The static figure of what the sliders do: mean exit time against the barrier (exact theory) for several
    batch sizes, learning rates and sharpnesses, each panel varying one around the defaults; Langevin dashed."""
    import matplotlib.pyplot as plt

    bars = np.logspace(-1, 2, points)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharey=True)
    sweeps = (("B", batch_sizes, "batch_size"), ("η", lrs, "lr"), ("h", sharpnesses, "sharpness"))
    for ax, (symbol, values, field) in zip(axes, sweeps):
        for value in values:
            kwargs: dict[str, Any] = {"batch_size": batch_size, "lr": lr, "sharpness": sharpness, field: value}
            basin = Basin.sgd(kwargs["sharpness"], kwargs["batch_size"], kwargs["lr"], LOSS_MIN)
            t_pl, t_lv = exit_curves(basin, bars)
            (line,) = ax.plot(bars, t_pl, label=f"{symbol} = {value:g}")
            ax.plot(bars, np.where(t_lv < 1e8, t_lv, np.nan), "--", color=line.get_color())
        ax.set(xscale="log", yscale="log", xlabel="barrier ΔL (units of L*)", ylim=(1e-2, 1e8))
        ax.set_title(f"varying {symbol} (solid: power law, dashed: Langevin)", fontsize=9)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("mean exit time T (time units)")
    fig.tight_layout()
    return fig
