"""The theory lab's in-browser formulas agree with the Python closed forms (run with node when it is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from reprobook.dual import theory
from reprobook.dual.lab import SCRIPT, theory_lab

STUB = """
const values = %s;
const elements = {};
const document = {getElementById: id => {
  if (!(id in elements))
    elements[id] = {value: values[id], checked: values[id] === true, innerHTML: '', textContent: ''};
  return elements[id];
}};
%s
dualLab('u_');
console.log(elements['u_out'].innerHTML);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("spread", [False, True])
@pytest.mark.parametrize("p, q, m, a, b", [(0.5, 0.6, 2, 0.8, 0.7), (0.3, 0.2, 1, 0.9, 0.4), (0.7, 0.05, 4, 0.6, 0.6)])
def test_script_matches_the_closed_forms(p: float, q: float, m: int, a: float, b: float, spread: bool) -> None:
    values = {"u_p": p, "u_q": q, "u_m": m, "u_a": a, "u_b": b, "u_spread": spread}
    out = subprocess.run(["node", "-e", STUB % (json.dumps(values), SCRIPT)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    one, two = (float(x) for x in re.findall(r"p'+ = ([0-9.]+)", out))
    n = 30 * (m + 1)
    assert one == pytest.approx(theory.dual_step(p, q, m), abs=6e-4)
    errors = "spread" if spread else "cluster"
    assert two == pytest.approx(theory.multistep_step(p, q, a, b, m, n, "cluster", errors), abs=6e-4)


def test_widget_is_self_contained_html() -> None:
    html = theory_lab()._repr_html_()
    assert "<script>" in html and 'type="range"' in html and "dualLab(" in html
    assert theory_lab()._repr_html_() != html  # every widget gets its own element ids
