"""pyproject.toml (ranges), constraints.txt (exact pins) and environment.yml (conda) must agree."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(line) for line in lines]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_normalise(name)] = version
    return pins


def _environment_pins() -> dict[str, str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    pins = {}
    for line in pip_section:
        if not line.startswith("-"):
            name, version = line.split("==")
            pins[_normalise(name)] = version
    return pins


def test_environment_yml_lists_exactly_the_pyproject_packages():
    assert set(_environment_pins()) == {_normalise(r.name) for r in _pyproject_requirements()}


def test_environment_yml_pins_match_the_constraints():
    constraints = _constraints()
    mismatched = {n: (v, constraints.get(n)) for n, v in _environment_pins().items() if constraints.get(n) != v}
    assert not mismatched, f"environment.yml vs constraints.txt (name: (env, constraints)): {mismatched}"


def test_every_pyproject_range_admits_its_pin():
    constraints = _constraints()
    for requirement in _pyproject_requirements():
        pin = constraints.get(_normalise(requirement.name))
        assert pin is not None, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pin, prereleases=True), f"{requirement} does not admit {pin}"


def test_gpu_matched_torch_pins():
    constraints = _constraints()
    assert (constraints["torch"], constraints["torchvision"], constraints["torchaudio"]) == (
        "2.11.0",
        "0.26.0",
        "2.11.0",
    )
    assert constraints["jupyter-book"].startswith("1.")
