"""reprobook: ten 2020 machine-learning papers, re-implemented, trained and checked.

The library behind the executable book. Each method lives in its own subpackage with the same
small surface (a config dataclass, a model, ``train(...)`` and ``evaluate(...)``); shared building
blocks live in :mod:`reprobook.nn`, Triton kernels in :mod:`reprobook.kernels`, offline data in
:mod:`reprobook.data`.
"""

from __future__ import annotations

from reprobook.profiles import PROFILES, pick, profile

__all__ = ["PROFILES", "__version__", "pick", "profile"]
__version__ = "0.1.0"
