"""Training the lexicon translators: supervised, standard dual and multi-step dual learning, from one warm start.

Every run trains the six translators among ``X``, ``Y`` and ``Z`` with Adam on full batches (the lexicon is small).
The first ``warmup_steps`` are supervised on the seed dictionaries only, for every method: from a random start dual
learning has nothing to go on (any pair of inverse permutations maximises the reconstruction). Then, until
``num_steps``:

* ``"supervised"``: the same supervised loss (the baseline, with the same budget);
* ``"dual"``: + ``dual_weight`` x the exact dual loss ``-mean_x R_dual(x)`` of every ordered pair;
* ``"multistep"``: + ``loop_weight`` x the loop loss ``-mean_x R_loop(x)`` of every loop through the third
  language (``X -> Y -> Z -> X`` and the five others), on top of the dual loss.

The supervised loss stays in the mix throughout. Both phases go through :func:`reprobook.train.fit` on one
:class:`~reprobook.train.History`, with the held-out accuracy probed every ``eval_every`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import torch

from reprobook._validate import check_choice, check_float, check_int
from reprobook.dual.data import LANGUAGES, Lexicon, load_data
from reprobook.dual.evaluate import DualScores, evaluate
from reprobook.dual.model import Translators, dual_reconstruction, loop_reconstruction, supervised_loss
from reprobook.profiles import pick_default
from reprobook.train import History, RunResult, fit, seed_everything

METHODS = ("supervised", "dual", "multistep")
LABELS = {"supervised": "(a) supervised", "dual": "(b) standard dual", "multistep": "(c) multi-step"}


@dataclass
class DualConfig:
    """One lexicon run: the world (drawn from ``seed``), the method and the recipe.

    World: ``num_concepts`` words per language, latent ``latent_dim``, word vectors of ``word_dim`` with ``noise``;
    ``seeds_per_pair`` seed pairs for ``X``-``Y`` (and, unless ``pivot_seeds`` says otherwise, for the pairs with
    ``Z``); ``test_fraction`` of the concepts held out of every seed dictionary; ``twin_gap``: twins (the negative
    control) or None. Recipe: Adam at ``lr`` with L2 ``weight_decay`` on the maps, ``warmup_steps`` supervised
    steps, then the method's loss until ``num_steps``.
    """

    method: str = "dual"
    num_concepts: int = pick_default(smoke=120, book=300, full=1_000)
    latent_dim: int = 16
    word_dim: int = 16
    noise: float = 0.5
    seeds_per_pair: int = 20
    pivot_seeds: int | None = None
    test_fraction: float = 0.5
    twin_gap: float | None = None
    init_scale: float = 0.0
    lr: float = 0.05
    weight_decay: float = 1e-3
    dual_weight: float = 1.0
    loop_weight: float = 1.0
    warmup_steps: int = pick_default(smoke=40, book=200, full=400)
    num_steps: int = pick_default(smoke=80, book=600, full=1_500)
    eval_every: int = pick_default(smoke=20, book=50, full=100)
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_int("num_concepts", self.num_concepts, 4)
        check_int("latent_dim", self.latent_dim, 1)
        check_int("word_dim", self.word_dim, 1)
        check_float("noise", self.noise, 0.0)
        check_float("test_fraction", self.test_fraction, 0.0, 1.0, open_low=True, open_high=True)
        pool = self.num_concepts - round(self.test_fraction * self.num_concepts)
        if self.seeds_per_pair == 0:
            raise ValueError(
                "seeds_per_pair=0 is an empty seed dictionary: dual learning needs a supervised warm start"
            )
        check_int("seeds_per_pair", self.seeds_per_pair, 1, pool)
        if self.pivot_seeds is not None:
            check_int("pivot_seeds", self.pivot_seeds, 1, pool)
        if self.twin_gap is not None:
            check_float("twin_gap", self.twin_gap, 0.0)
            if self.num_concepts % 2:
                raise ValueError(f"num_concepts={self.num_concepts} must be even with twin_gap (concepts in twins)")
        check_float("init_scale", self.init_scale, 0.0)
        check_float("lr", self.lr, 0.0, open_low=True)
        check_float("weight_decay", self.weight_decay, 0.0)
        check_float("dual_weight", self.dual_weight, 0.0)
        check_float("loop_weight", self.loop_weight, 0.0)
        check_int("num_steps", self.num_steps, 1)
        check_int("warmup_steps", self.warmup_steps, 0, self.num_steps)
        check_int("eval_every", self.eval_every, 1)
        check_int("seed", self.seed, 0)

    @property
    def label(self) -> str:
        """``"(a) supervised"``, ``"(b) standard dual"`` or ``"(c) multi-step"``."""
        return LABELS[self.method]


def build_model(config: DualConfig, data: Lexicon) -> Translators:
    """Six fresh translators for the languages of ``data``: zero maps unless ``init_scale > 0`` (a zero map sends every
    source word to the origin, so ``f(y | x) ∝ exp(-||v_y||^2)`` ignores ``x``: no translation is preferred)."""
    return Translators(data.languages, data.words(data.languages[0]).shape[1], config.init_scale)


@dataclass(kw_only=True)
class DualResult(RunResult):
    """A trained :class:`~reprobook.dual.model.Translators`, its history and its scores.

    ``warm``: the scores after the supervised warm start (the same for every method of one world and seed);
    ``test``: the scores at the end. ``history.curve("accuracy")``: mean held-out accuracy over the six directions;
    ``"accuracy_xy"``: over ``X -> Y`` and ``Y -> X``."""

    config: DualConfig
    model: Translators
    warm: DualScores
    test: DualScores


def objective(
    model: Translators, data: Lexicon, method: str, dual_weight: float = 1.0, loop_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """The loss terms of ``method`` on the whole lexicon: ``supervised`` (summed over the six directions), and
    ``dual`` and ``loop`` (each a sum over directions or loops of ``-mean_x R(x)``), and their weighted ``loss``."""
    check_choice("method", method, METHODS)
    tables = model.tables(data)
    sup = sum(supervised_loss(tables[a, b], data.seed_pairs(a, b), data.seed_pairs(a, b)) for a, b in model.directions)
    terms = {"supervised": torch.as_tensor(sup)}
    loss = terms["supervised"]
    if method in ("dual", "multistep"):
        dual = -sum(dual_reconstruction(tables[a, b], tables[b, a]).mean() for a, b in model.directions)
        terms["dual"] = torch.as_tensor(dual)
        loss = loss + dual_weight * terms["dual"]
    if method == "multistep":
        loops = permutations(model.languages, 3)
        loop = -sum(loop_reconstruction(tables[a, b], tables[b, c], tables[c, a]).mean() for a, b, c in loops)
        terms["loop"] = torch.as_tensor(loop)
        loss = loss + loop_weight * terms["loop"]
    return {**terms, "loss": loss}


def train(config: DualConfig | None = None, data: Lexicon | None = None, *, progress: bool = True) -> DualResult:
    """Train ``config`` (default: the profile's standard dual run) on ``data`` (drawn from the config if None)."""
    config = DualConfig() if config is None else config
    data = load_data(config) if data is None else data
    seed_everything(config.seed)
    model = build_model(config, data)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    history = History()

    def phase(method: str, num_steps: int, desc: str) -> None:
        def step(_: object) -> dict[str, float]:
            terms = objective(model, data, method, config.dual_weight, config.loop_weight)
            decay = sum(p.square().sum() for p in model.parameters())
            optimizer.zero_grad(set_to_none=True)
            (terms["loss"] + config.weight_decay * decay).backward()
            optimizer.step()
            return {key: value.item() for key, value in terms.items()}

        def probe(_: int) -> dict[str, float]:
            scores = evaluate(model, data)
            return {"accuracy": scores.accuracy, "accuracy_xy": scores.accuracy_xy}

        fit(step, [None], num_steps, evaluate=probe, eval_every=config.eval_every, history=history, desc=desc,
            progress=progress)  # fmt: skip

    if config.warmup_steps:
        phase("supervised", config.warmup_steps, f"{config.label}: supervised warm start")
    warm = evaluate(model, data, label="warm start")
    if config.num_steps > config.warmup_steps:
        phase(config.method, config.num_steps - config.warmup_steps, config.label)
    test = evaluate(model, data, label=config.label)
    metrics = {"accuracy": test.accuracy, "accuracy_xy": test.accuracy_xy, "warm_accuracy": warm.accuracy}
    return DualResult(config=config, model=model, history=history, metrics=metrics, warm=warm, test=test)


__all__ = ["LANGUAGES", "METHODS", "DualConfig", "DualResult", "build_model", "objective", "train"]
