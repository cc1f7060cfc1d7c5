"""The theory lab's sliders as self-contained HTML: they work in the static book, in JupyterLab and in Colab.

The closed forms of :mod:`reprobook.dual.theory` are a few multiplications, so the page recomputes them in the browser
(an inline script, no kernel, no ipywidgets) as the sliders move: the primal's accuracy after one dual step ``p'``
and after the dual step plus the loop through ``Z`` ``p''``, both as curves against the dual's accuracy ``q``, with the
chance line ``q = 1 / (m + 1)``. A test checks the script's formulas against the Python ones.
"""

from __future__ import annotations

import itertools

from reprobook._html import HTMLWidget

_ids = itertools.count()

SCRIPT = """
function dualLab(id) {
  const v = k => parseFloat(document.getElementById(id + k).value);
  const p = v('p'), q = v('q'), m = v('m'), n = 30 * (m + 1), a = v('a'), b = v('b');
  const spread = document.getElementById(id + 'spread').checked;
  const echo = (r, e) => (1 - r) / (e ? n - 1 : m);
  const s = a * b + (1 - a) * echo(b, spread);
  const poe = (experts) => {
    let right = p, wrong = 1 - p;
    for (const [r, e] of experts) { right *= r; wrong *= e; }
    return right + wrong > 0 ? right / (right + wrong) : NaN;
  };
  const one = x => poe([[x, echo(x, false)]]);
  const two = x => poe([[x, echo(x, false)], [s, echo(s, spread)]]);
  const W = 320, H = 200, L = 40, B = 30;
  const X = x => L + x * (W - L - 10), Y = y => H - B - y * (H - B - 10);
  const line = f => Array.from({length: 101}, (_, i) => i / 100)
    .map((x, i) => (i ? 'L' : 'M') + X(x).toFixed(1) + ',' + Y(f(x)).toFixed(1)).join('');
  const c = 1 / (m + 1);
  document.getElementById(id + 'svg').innerHTML =
    `<rect x="${L}" y="10" width="${W - L - 10}" height="${H - B - 10}" fill="none" stroke="#999"/>` +
    `<path d="M${X(0)},${Y(p)}L${X(1)},${Y(p)}" stroke="#999" stroke-dasharray="4"/>` +
    `<path d="M${X(c)},${Y(0)}L${X(c)},${Y(1)}" stroke="#c62828" stroke-dasharray="2"/>` +
    `<path d="${line(one)}" fill="none" stroke="#1565c0" stroke-width="2"/>` +
    `<path d="${line(two)}" fill="none" stroke="#2e7d32" stroke-width="2"/>` +
    `<circle cx="${X(q)}" cy="${Y(one(q))}" r="4" fill="#1565c0"/>` +
    `<circle cx="${X(q)}" cy="${Y(two(q))}" r="4" fill="#2e7d32"/>` +
    `<text x="${L - 4}" y="${Y(0) + 4}" font-size="10" text-anchor="end">0</text>` +
    `<text x="${L - 4}" y="${Y(1) + 4}" font-size="10" text-anchor="end">1</text>` +
    `<text x="${X(0)}" y="${H - 14}" font-size="10" text-anchor="middle">0</text>` +
    `<text x="${X(1)}" y="${H - 14}" font-size="10" text-anchor="middle">1</text>` +
    `<text x="${X(0.5)}" y="${H - 2}" font-size="11" text-anchor="middle">dual accuracy q</text>` +
    `<text x="12" y="${Y(0.5)}" font-size="11" text-anchor="middle" transform="rotate(-90 12 ${Y(0.5)})">` +
    `primal accuracy after the step</text>`;
  const verdict = x => x > p ? 'helps' : (x < p ? 'hurts' : 'changes nothing');
  document.getElementById(id + 'out').innerHTML =
    `p = ${p.toFixed(2)}, q = ${q.toFixed(2)}, m = ${m}: ` +
    `chance within the confusion set 1/(m+1) = ${c.toFixed(2)}<br>` +
    `<span style="color:#1565c0">dual step: p' = ${one(q).toFixed(3)} (${verdict(one(q))})</span><br>` +
    `<span style="color:#2e7d32">+ loop through Z (path accuracy s = ${s.toFixed(3)}): p'' = ` +
    `${two(q).toFixed(3)}</span>`;
  for (const k of ['p', 'q', 'm', 'a', 'b']) document.getElementById(id + k + 'v').textContent = v(k);
}
"""


def _slider(uid: str, key: str, label: str, low: float, high: float, step: float, value: float) -> str:
    return (
        f'<label style="display:block;font-size:0.85em">{label} <b id="{uid}{key}v">{value}</b><br>'
        f'<input type="range" id="{uid}{key}" min="{low}" max="{high}" step="{step}" value="{value}" '
        f'oninput="dualLab(\'{uid}\')" style="width:220px"></label>'
    )


def theory_lab(p: float = 0.5, q: float = 0.6, confusions: int = 2, q_yz: float = 0.8, q_zx: float = 0.8) -> HTMLWidget:
    """Sliders for ``p``, ``q``, ``m`` and the two translators of the path through ``Z``; a toggle for the path's
    errors (aligned with the clusters, or spread over all ``N - 1 = 30 (m + 1) - 1`` words)."""
    uid = f"duallab{next(_ids)}_"
    sliders = "".join(
        [
            _slider(uid, "p", "primal accuracy p", 0.01, 0.99, 0.01, p),
            _slider(uid, "q", "dual accuracy q", 0.0, 1.0, 0.01, q),
            _slider(uid, "m", "confusion set size m", 1, 9, 1, confusions),
            _slider(uid, "a", "path Y→Z accuracy", 0.0, 1.0, 0.01, q_yz),
            _slider(uid, "b", "path Z→X accuracy", 0.0, 1.0, 0.01, q_zx),
        ]
    )
    toggle = (
        f'<label style="font-size:0.85em"><input type="checkbox" id="{uid}spread" onchange="dualLab(\'{uid}\')"> '
        "path errors spread over all words (not aligned with the clusters)</label>"
    )
    body = (
        f'<div style="display:flex;gap:16px;align-items:flex-start;font-family:sans-serif">'
        f"<div>{sliders}{toggle}</div>"
        f'<div><svg id="{uid}svg" width="320" height="200"></svg><div id="{uid}out" style="font-size:0.85em"></div>'
        "</div></div>"
    )
    # The script defines dualLab once per page; the onload trick draws the first frame without a kernel.
    return HTMLWidget(
        f"<script>{SCRIPT}</script>{body}"
        f'<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" onload="dualLab(\'{uid}\')" style="display:none">'
    )
