"""Every method package has the same surface (``lib/reprobook/METHODS.md``); a new method is checked by adding it
to ``METHODS``.

For each: the five files; the paper's citation and arXiv link at the top of the package docstring; the names
``<Method>Config``, ``<Method>Result``, ``<Method>Scores``, ``load_data``, ``build_model``, ``train`` and ``evaluate``
with the agreed signatures; a config that refuses a bad value by name; and, in the ``smoke`` profile, a ``train``
that returns the shared result type and an ``evaluate`` whose ``row()`` is a table row.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
from pathlib import Path

import pytest
import torch

from reprobook.train import History, RunResult, Scores

METHODS = {
    "irn": "IRN",
    "mat": "MAT",
    "seek": "SEEK",
    "fastspeech2": "FastSpeech2",
    "dual": "Dual",
    "powerlaw": "PowerLaw",
    "ilc": "ILC",
    "mcbert": "MCBERT",
    "uwspeech": "UWSpeech",
    "comma": "CoMMA",
}
FILES = ("model.py", "data.py", "train.py", "evaluate.py", "baselines.py")
POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD


def package(name: str):
    return importlib.import_module(f"reprobook.{name}")


def params(function) -> list[inspect.Parameter]:
    return list(inspect.signature(function).parameters.values())


@pytest.mark.parametrize("name", METHODS)
def test_files_and_citation(name: str) -> None:
    module = package(name)
    folder = Path(module.__file__).parent
    assert [f for f in FILES if not (folder / f).exists()] == []
    first_paragraph = (module.__doc__ or "").split("\n\n")[0]
    assert "arxiv.org/abs/" in first_paragraph, "the docstring opens with the paper's citation and arXiv link"


@pytest.mark.parametrize("name", METHODS)
def test_names_and_signatures(name: str) -> None:
    module, prefix = package(name), METHODS[name]
    config, result, scores = (getattr(module, f"{prefix}{kind}") for kind in ("Config", "Result", "Scores"))
    assert dataclasses.is_dataclass(config)
    assert issubclass(result, RunResult) and issubclass(scores, Scores)
    load, build, train, evaluate = (
        params(getattr(module, f)) for f in ("load_data", "build_model", "train", "evaluate")
    )
    assert [p.name for p in load[:1]] == ["config"]
    assert [p.name for p in build[:2]] == ["config", "data"]
    assert [(p.name, p.kind, p.default) for p in train[:2]] == [
        ("config", POSITIONAL, None),
        ("data", POSITIONAL, None),
    ]
    keyword = {p.name: p for p in train[2:]}
    assert keyword["progress"].kind is inspect.Parameter.KEYWORD_ONLY and keyword["progress"].default is True
    assert [p.name for p in evaluate[:3]] == ["model", "data", "split"] and evaluate[2].default == "test"
    for exported in ("load_data", "build_model", "train", "evaluate", f"{prefix}Config", f"{prefix}Result"):
        assert exported in module.__all__


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize(("field", "value"), [("seed", -1), ("seed", 1.5), ("lr", math.nan), ("lr", -1e-3)])
def test_config_refuses_bad_values_by_name(name: str, field: str, value: float) -> None:
    config = getattr(package(name), f"{METHODS[name]}Config")
    with pytest.raises(ValueError, match=field):
        config(**{field: value})


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_smoke_training_returns_the_shared_result(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROBOOK_PROFILE", "smoke")
    module, prefix = package(name), METHODS[name]
    config = getattr(module, f"{prefix}Config")()
    data = module.load_data(config)
    result = module.train(config, data, progress=False)
    assert isinstance(result, getattr(module, f"{prefix}Result"))
    assert isinstance(result.history, History) and result.history.num_steps > 0 and result.seconds > 0
    assert isinstance(result.model, torch.nn.Module) and result.num_parameters > 0
    scores = module.evaluate(result.model, data)
    assert isinstance(scores, getattr(module, f"{prefix}Scores"))
    row = scores.row()
    assert isinstance(row, dict) and "method" in row and len(row) > 1
