"""Training MAT and its Transformer baseline on number-phrase translation.

The recipe follows the official IWSLT14 one, shrunk: post-LN, dropout 0.3, no attention dropout, label
smoothing 0.1, Adam (0.9, 0.98) with inverse-sqrt warm-up. Proximal initialisation spends the first
``proximal_steps`` updates on a plain Transformer (``N_a = 1``, same ``d_h``), clones it into MAT and spends the
rest with a fresh optimiser and a fresh warm-up, so every run gets the same number of updates. Both phases go
through :func:`reprobook.train.fit` on one :class:`~reprobook.train.History`, so the loss curve and the training
clock run on across the switch.

Every run keeps, by default, its best checkpoint: the parameters at the probe (every ``eval_every`` updates) with
the lowest validation loss, so a model that overfits is scored where it generalised best (select on validation,
report on test). :func:`train_seeds` trains several systems on the same seeds, pairing them for a paired test.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import Any, Literal

import torch

from reprobook._validate import check_choice, check_float, check_int
from reprobook.data.text import LANGUAGES, LEVELS, max_pairs
from reprobook.mat.data import TranslationData, load_data
from reprobook.mat.evaluate import evaluate, loss_on
from reprobook.mat.model import SCALINGS, check_branches, mat_transformer, proximal_init
from reprobook.nn.transformer import (
    Seq2SeqTransformer,
    TransformerSizes,
    inverse_sqrt_schedule,
    label_smoothed_loss,
)
from reprobook.profiles import pick_default
from reprobook.train import PROGRESS_ENV, BestCheckpoint, History, RunResult, fit, seed_everything

CORPORA = ("numbers", "iwslt14")
CHECKPOINTS = ("best", "last")


def _check_fraction(argument: str, value: float) -> None:
    """``0 <= value < 1``, finite, or ``ValueError`` naming ``argument``."""
    if check_float(argument, value, 0.0, 1.0) == 1.0:
        raise ValueError(f"{argument}=1.0 is out of range; expected 0.0 <= {argument} < 1.0")


@dataclass
class MATConfig:
    """One run. ``num_branches=1`` is the Transformer baseline; ``proximal_steps > 0`` proximal initialisation.

    ``ffn_dim`` is the encoder FFN width ``d_h``; ``decoder_ffn_dim`` (default ``ffn_dim``) the decoder's, so a
    baseline can be matched to MAT's parameter count (:func:`~reprobook.mat.baselines.matched_configs`).
    ``eval_every``: updates between two probes of the train and valid loss (and one after each phase).
    ``checkpoint``: ``"best"`` keeps the parameters of the probe with the lowest validation loss (of MAT's phase
    under proximal initialisation), ``"last"`` those after the last update.
    """

    num_branches: int = 2
    drop_branch: float = 0.3
    proximal_steps: int = 0
    scaling: str = "paper"
    d_model: int = 64
    num_heads: int = 4
    layers: int = 2
    ffn_dim: int = 128
    decoder_ffn_dim: int | None = None
    dropout: float = pick_default(smoke=0.1, book=0.1, full=0.3)  # light: the small-data model overfits
    label_smoothing: float = 0.1
    lr: float = 1e-3
    warmup: int = pick_default(smoke=10, book=100, full=4_000)
    batch_size: int = 64
    num_steps: int = pick_default(smoke=30, book=800, full=50_000)
    seed: int = 0
    # data: a low-resource regime, like IWSLT; corpus="iwslt14" is the real IWSLT14 de->en (opt-in download)
    corpus: str = "numbers"
    vocab_min_freq: int = 1  # rarer words become <unk>; raise it for IWSLT14's large word vocabulary
    src_lang: str = "fr"
    tgt_lang: str = "en"
    src_level: Literal["word", "char"] = "word"
    tgt_level: Literal["word", "char"] = "word"
    corpus_size: int = pick_default(smoke=400, book=3_000, full=40_000)
    train_size: int | None = pick_default(smoke=150, book=150, full=None)  # None: all 80 %
    corpus_seed: int = 0
    eval_every: int = pick_default(smoke=10, book=25, full=2_000)
    checkpoint: str = "best"

    def __post_init__(self) -> None:
        check_int("num_branches", self.num_branches, 1)
        check_float("drop_branch", self.drop_branch, 0.0, 1.0)
        check_branches(self.num_branches, self.drop_branch)  # rho = 1 would drop every branch
        check_int("num_steps", self.num_steps, 1)
        check_int("proximal_steps", self.proximal_steps, 0, self.num_steps - 1)
        if self.proximal_steps and self.num_branches == 1:
            raise ValueError("proximal_steps > 0 initialises MAT from a Transformer: it needs num_branches >= 2")
        check_choice("scaling", self.scaling, SCALINGS)
        for name in ("d_model", "num_heads", "layers", "ffn_dim", "warmup", "batch_size", "vocab_min_freq"):
            check_int(name, getattr(self, name), 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        if self.decoder_ffn_dim is not None:
            check_int("decoder_ffn_dim", self.decoder_ffn_dim, 1)
        _check_fraction("dropout", self.dropout)
        _check_fraction("label_smoothing", self.label_smoothing)
        check_float("lr", self.lr, 0.0, open_low=True)
        check_int("seed", self.seed, 0)
        check_choice("corpus", self.corpus, CORPORA)
        check_choice("src_lang", self.src_lang, LANGUAGES)
        check_choice("tgt_lang", self.tgt_lang, LANGUAGES)
        if self.src_lang == self.tgt_lang:
            raise ValueError(f"src_lang and tgt_lang must differ, got {self.src_lang!r} for both")
        check_choice("src_level", self.src_level, LEVELS)
        check_choice("tgt_level", self.tgt_level, LEVELS)
        check_int("corpus_size", self.corpus_size, 10, max_pairs())
        if self.train_size is not None:
            check_int("train_size", self.train_size, 1)
        check_int("corpus_seed", self.corpus_seed, 0)
        check_int("eval_every", self.eval_every, 1)
        check_choice("checkpoint", self.checkpoint, CHECKPOINTS)

    @property
    def label(self) -> str:
        """The system's name in tables: ``"Transformer"``, ``"MAT N_a=2 rho=0.3"``, ``"... + proximal init"``."""
        if self.num_branches == 1:
            return "Transformer"
        mat = f"MAT N_a={self.num_branches} rho={self.drop_branch:g}"
        return f"{mat} + proximal init" if self.proximal_steps else mat


def build_model(config: MATConfig, data: TranslationData, *, num_branches: int | None = None) -> Seq2SeqTransformer:
    """A fresh Transformer (``N_a = 1``) or MAT for ``config`` and the vocabularies of ``data``.

    ``num_branches`` overrides ``config.num_branches`` (proximal initialisation builds the ``N_a = 1`` model
    first)."""
    sizes = TransformerSizes(
        src_vocab=len(data.src_vocab),
        tgt_vocab=len(data.tgt_vocab),
        d_model=config.d_model,
        num_heads=config.num_heads,
        encoder_layers=config.layers,
        decoder_layers=config.layers,
        encoder_ff=config.ffn_dim,
        decoder_ff=config.decoder_ffn_dim,
        dropout=config.dropout,
    )
    n = config.num_branches if num_branches is None else check_int("num_branches", num_branches, 1)
    return Seq2SeqTransformer(sizes) if n == 1 else mat_transformer(sizes, n, config.drop_branch, config.scaling)


@dataclass(kw_only=True)
class MATResult(RunResult):
    """A trained model, its :class:`~reprobook.train.History` and its final metrics.

    ``history.curve("train_loss")`` and ``history.curve("valid_loss")``: the probes every ``eval_every`` updates
    (eval mode, no smoothing; the train probe is the first ``len(valid)`` training pairs). ``model``: the kept
    checkpoint (``config.checkpoint``). ``metrics``: ``bleu``, ``exact`` (%) and ``test_loss`` on the test split;
    ``step``, the update of the kept checkpoint, with its ``train_loss``, ``valid_loss`` and
    ``gap = valid_loss - train_loss``; ``valid_rise``, how far the validation loss rose from its lowest probe to
    the last (0 for a model still improving: the sign of overfitting); ``sec_per_update`` (training seconds per
    update, evaluation excluded).
    """

    config: MATConfig
    model: Seq2SeqTransformer


def train(config: MATConfig | None = None, data: TranslationData | None = None, *, progress: bool = True) -> MATResult:
    """Train ``config`` (default: the profile's MAT run) from scratch, or with proximal initialisation, keep its
    best (or last) checkpoint and evaluate it on the test split. ``data``: as
    :func:`~reprobook.mat.data.load_data` returns it (loaded if None).
    """
    config = MATConfig() if config is None else config
    data = load_data(config) if data is None else data
    generator = seed_everything(config.seed)
    probe = data.train[: len(data.valid)]
    history = History()
    best = BestCheckpoint(lower_is_better=True)  # the validation loss

    def phase(model: Seq2SeqTransformer, num_steps: int, desc: str, final: bool) -> None:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98), eps=1e-9)  # fresh moments
        scheduler = inverse_sqrt_schedule(optimizer, config.warmup)

        def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
            src, tgt = batch
            model.train()
            loss = label_smoothed_loss(model(src, tgt[:, :-1]), tgt[:, 1:], config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            return {"loss": loss.item()}

        def probe_losses(step_number: int) -> dict[str, float]:
            losses = {"train_loss": loss_on(model, data, probe), "valid_loss": loss_on(model, data, data.valid)}
            if final:
                best.offer(step_number, losses["valid_loss"], model)
            return losses

        batches = data.batches(config.batch_size, generator)
        fit(
            step,
            batches,
            num_steps,
            evaluate=probe_losses,
            eval_every=config.eval_every,
            history=history,
            desc=desc,
            progress=progress,
        )

    if config.proximal_steps:
        pretrained = build_model(config, data, num_branches=1)
        phase(pretrained, config.proximal_steps, "Transformer (proximal init)", final=False)
        model = proximal_init(pretrained, build_model(config, data))
    else:
        model = build_model(config, data)
    phase(model, config.num_steps - config.proximal_steps, config.label, final=True)
    kept = history.evaluations[-1]
    if config.checkpoint == "best":
        if not best.restore(model):
            raise RuntimeError("no validation probe gave a comparable loss: there is no best checkpoint to keep")
        kept = next(p for p in history.evaluations if p.step == best.step)
    test = evaluate(model, data, label=config.label)
    metrics = {
        "bleu": test.bleu,
        "exact": test.exact,
        "test_loss": test.loss,
        "step": float(kept.step),
        "train_loss": kept.metrics["train_loss"],
        "valid_loss": kept.metrics["valid_loss"],
        "gap": kept.metrics["valid_loss"] - kept.metrics["train_loss"],
        "valid_rise": history.evaluations[-1].metrics["valid_loss"] - best.score,
        "sec_per_update": history.seconds / history.num_steps,
    }
    return MATResult(config=config, model=model, history=history, metrics=metrics)


def _one_thread() -> None:
    """Worker initialiser: one intra-op thread per process, so ``workers`` processes share the cores evenly."""
    torch.set_num_threads(1)


def _train_quietly(config: MATConfig, data: TranslationData) -> tuple[History, dict[str, float], bytes]:
    """:func:`train` in a worker process; the model comes back as serialised weights (a few MB at most)."""
    result = train(config, data, progress=False)
    buffer = io.BytesIO()
    torch.save(result.model.state_dict(), buffer)
    return result.history, result.metrics, buffer.getvalue()


def _runs_bar(total: int, enabled: bool) -> Any:
    """One progress bar over runs, drawn like :func:`reprobook.train.fit`'s (text when ``REPROBOOK_PROGRESS=text``)."""
    from tqdm.auto import tqdm
    from tqdm.std import tqdm as text_tqdm

    if os.environ.get(PROGRESS_ENV, "").strip() == "text":
        return text_tqdm(total=total, desc="runs", disable=not enabled, mininterval=2.0, ncols=100)
    return tqdm(total=total, desc="runs", disable=not enabled, mininterval=0.5)


def train_seeds(
    configs: Mapping[str, MATConfig],
    seeds: Sequence[int],
    data: TranslationData,
    *,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, list[MATResult]]:
    """Train every config of ``configs`` once per seed: ``{name: [result for each seed]}``.

    Run ``k`` of every system uses ``seeds[k]`` (``replace(config, seed=seeds[k])``): the same order of training
    batches and the same seed for the initialisation, so the systems pair up seed by seed
    (:func:`~reprobook.mat.evaluate.paired_difference`). ``workers > 1`` trains that many runs at a time, each in
    its own process with one thread; every run seeds itself, so the results do not depend on ``workers``. One
    progress bar counts the runs.
    """
    check_int("workers", workers, 1)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)!r}")
    jobs = [(name, k, replace(config, seed=seed)) for k, seed in enumerate(seeds) for name, config in configs.items()]
    slots: dict[str, list[MATResult | None]] = {name: [None] * len(seeds) for name in configs}
    bar = _runs_bar(len(jobs), progress)
    try:
        if workers == 1:
            for name, k, config in jobs:
                slots[name][k] = train(config, data, progress=False)
                bar.update()
        else:
            context = get_context("spawn")  # fork is unsafe once torch has started its thread pools
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
                futures = {pool.submit(_train_quietly, config, data): (name, k, config) for name, k, config in jobs}
                for future in as_completed(futures):
                    name, k, config = futures[future]
                    history, metrics, weights = future.result()
                    model = build_model(config, data)
                    model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
                    slots[name][k] = MATResult(config=config, model=model, history=history, metrics=metrics)
                    bar.update()
    finally:
        bar.close()
    return {name: [r for r in runs if r is not None] for name, runs in slots.items()}
