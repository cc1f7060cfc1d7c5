"""Training and evaluating MAT and its Transformer baseline on number-phrase translation.

The recipe follows the official IWSLT14 one, shrunk: post-LN, dropout 0.3, no attention dropout, label
smoothing 0.1, Adam (0.9, 0.98) with inverse-sqrt warm-up. Proximal initialisation spends the first
``proximal_steps`` updates on a plain Transformer (``N_a = 1``, same ``d_h``), clones it into MAT and spends the
rest with a fresh optimiser and a fresh warm-up, so every run gets the same number of updates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from reprobook._validate import check_choice
from reprobook.data.iwslt import iwslt14_corpus
from reprobook.data.text import Vocabulary, pad_batch, parallel_corpus
from reprobook.mat.model import check_branches, mat_transformer, proximal_init
from reprobook.metrics.text import bleu
from reprobook.nn import count_parameters
from reprobook.nn.transformer import (
    Seq2SeqTransformer,
    TransformerSizes,
    beam_search,
    greedy_decode,
    inverse_sqrt_schedule,
    label_smoothed_loss,
)
from reprobook.profiles import pick
from reprobook.train import History, fit, seed_everything


@dataclass
class MATConfig:
    """One run. ``num_branches=1`` is the Transformer baseline; ``proximal_steps > 0`` proximal initialisation.

    ``ffn_dim`` is the encoder FFN width ``d_h``; ``decoder_ffn_dim`` (default ``ffn_dim``) the decoder's, so a
    baseline can be matched to MAT's parameter count (:func:`matched_configs`).
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
    dropout: float = 0.3
    label_smoothing: float = 0.1
    lr: float = 1e-3
    warmup: int = field(default_factory=lambda: pick(smoke=10, book=200, full=4_000))
    batch_size: int = 64
    num_steps: int = field(default_factory=lambda: pick(smoke=30, book=600, full=50_000))
    seed: int = 0
    # data: a low-resource regime, like IWSLT; corpus="iwslt14" is the real IWSLT14 de->en (opt-in download)
    corpus: str = "numbers"
    vocab_min_freq: int = 1  # rarer words become <unk>; raise it for IWSLT14's large word vocabulary
    src_lang: str = "fr"
    tgt_lang: str = "en"
    src_level: Literal["word", "char"] = "word"
    tgt_level: Literal["word", "char"] = "word"
    corpus_size: int = field(default_factory=lambda: pick(smoke=400, book=3_000, full=40_000))
    train_size: int | None = field(default_factory=lambda: pick(smoke=None, book=600, full=None))  # None: all 80 %
    corpus_seed: int = 0
    eval_every: int = field(default_factory=lambda: pick(smoke=10, book=100, full=2_000))

    def __post_init__(self) -> None:
        check_branches(self.num_branches, self.drop_branch)
        check_choice("corpus", self.corpus, ("numbers", "iwslt14"))
        if not 0 <= self.proximal_steps < self.num_steps:
            raise ValueError(f"proximal_steps={self.proximal_steps} must lie in [0, num_steps={self.num_steps})")


def matched_configs(base: MATConfig) -> dict[str, MATConfig]:
    """The chapter's four runs at (nearly) equal parameter count.

    MAT's extra branches cost ``(N_a - 1) * 4 d^2`` per attention; the baseline spends them on a wider FFN
    (``2 d`` per unit of width): ``+ (N_a - 1) * 2 d`` in the encoder (one attention per layer) and
    ``+ (N_a - 1) * 4 d`` in the decoder (two). Biases make the match approximate; print the counts.
    """
    extra = (base.num_branches - 1) * 2 * base.d_model
    baseline = replace(
        base,
        num_branches=1,
        drop_branch=0.0,
        proximal_steps=0,
        ffn_dim=base.ffn_dim + extra,
        decoder_ffn_dim=(base.decoder_ffn_dim or base.ffn_dim) + 2 * extra,
    )
    return {
        "Transformer": baseline,
        "MAT, rho=0": replace(base, drop_branch=0.0, proximal_steps=0),
        f"MAT, rho={base.drop_branch:g}": replace(base, proximal_steps=0),
        "MAT + proximal init": replace(base, proximal_steps=base.proximal_steps or base.num_steps // 2),
    }


@dataclass
class TranslationData:
    """Pairs and vocabularies: ``splits.train/valid/test`` lists of ``(source, target)`` strings."""

    train: list[tuple[str, str]]
    valid: list[tuple[str, str]]
    test: list[tuple[str, str]]
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary

    def encode(self, pairs: Sequence[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(src (B, S), tgt (B, T))`` padded ids, ``tgt`` with ``<bos>`` and ``<eos>``."""
        src, _ = pad_batch([self.src_vocab.encode(s) for s, _ in pairs])
        tgt, _ = pad_batch([self.tgt_vocab.encode(t) for _, t in pairs])
        return src, tgt

    def encode_source(self, sentences: Sequence[str], strict: bool = True) -> torch.Tensor:
        """Source ids ``(B, S)``. ``strict``: ``ValueError`` naming a token the training data never had, instead
        of silently mapping it to ``<unk>``."""
        level = self.src_vocab.level
        for text in sentences if strict else ():
            tokens = text.split() if level == "word" else list(text)
            unknown = sorted({t for t in tokens if t not in self.src_vocab.tokens})
            if unknown:
                raise ValueError(f"{text!r} has tokens the {level}-level source vocabulary lacks: {unknown}")
        return pad_batch([self.src_vocab.encode(s) for s in sentences])[0]


def load_data(config: MATConfig) -> TranslationData:
    """The corpus of :func:`reprobook.data.text.parallel_corpus` and vocabularies built on its training split.

    ``corpus="iwslt14"`` reads IWSLT14 de->en instead (:func:`reprobook.data.iwslt.iwslt14_corpus`, downloaded
    only with ``REPROBOOK_ALLOW_DOWNLOAD=1``) with word-level vocabularies; the language, size, seed and level
    fields then do not apply. ``train_size`` keeps only the first pairs of the training split (a low-resource
    regime with full-size valid and test splits)."""
    src_level, tgt_level = config.src_level, config.tgt_level
    if config.corpus == "iwslt14":
        splits, src_level, tgt_level = iwslt14_corpus(), "word", "word"
    else:
        splits = parallel_corpus(config.src_lang, config.tgt_lang, size=config.corpus_size, seed=config.corpus_seed)
    train = splits.train if config.train_size is None else splits.train[: config.train_size]
    return TranslationData(
        train,
        splits.valid,
        splits.test,
        Vocabulary.build((s for s, _ in splits.train), src_level, config.vocab_min_freq),
        Vocabulary.build((t for _, t in splits.train), tgt_level, config.vocab_min_freq),
    )


def build_model(config: MATConfig, data: TranslationData, num_branches: int | None = None) -> Seq2SeqTransformer:
    """A Transformer (``N_a = 1``) or MAT for ``config`` and the vocabularies of ``data``."""
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
    n = config.num_branches if num_branches is None else num_branches
    return Seq2SeqTransformer(sizes) if n == 1 else mat_transformer(sizes, n, config.drop_branch, config.scaling)


@dataclass
class MATResult:
    """A trained model, its loss curve and its test metrics."""

    config: MATConfig
    model: Seq2SeqTransformer
    history: History
    metrics: dict[str, float]
    curve: dict[str, list[float]]  # "step", "train_loss", "valid_loss" (eval mode, no smoothing)
    num_parameters: int


def _batches(
    data: TranslationData, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        order = torch.randperm(len(data.train), generator=generator).tolist()
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield data.encode([data.train[j] for j in order[i : i + batch_size]])


@torch.no_grad()
def loss_on(model: Seq2SeqTransformer, data: TranslationData, pairs: Sequence[tuple[str, str]]) -> float:
    """Token-level cross-entropy (no smoothing) in eval mode: the number the train/valid gap is measured in."""
    was_training = model.training
    model.eval()
    src, tgt = data.encode(pairs)
    loss = label_smoothed_loss(model(src, tgt[:, :-1]), tgt[:, 1:], smoothing=0.0)
    model.train(was_training)
    return float(loss)


def translate(
    model: Seq2SeqTransformer,
    data: TranslationData,
    sentences: Sequence[str],
    beam_size: int = 1,
    max_len: int | None = None,
    strict: bool = True,
) -> list[str]:
    """Translate source ``sentences`` (greedy for ``beam_size=1``, else beam search with length penalty 1).

    Outputs stop at ``max_len`` tokens (default: twice the longest source, at least 32).

    ``strict=True`` rejects words the model never saw (``ValueError``); ``False`` reads them as ``<unk>``,
    as test-set evaluation must."""
    if isinstance(sentences, str):
        raise TypeError("sentences must be a list of strings, got a single string")
    was_training = model.training
    model.eval()
    src = data.encode_source(sentences, strict)
    bos, eos = data.tgt_vocab.bos_id, data.tgt_vocab.eos_id
    max_len = max(32, 2 * src.shape[1]) if max_len is None else max_len
    ids = (
        greedy_decode(model, src, bos, eos, max_len)
        if beam_size == 1
        else beam_search(model, src, bos, eos, beam_size, max_len)
    )
    model.train(was_training)
    return [data.tgt_vocab.decode(row) for row in ids]


def evaluate(
    model: Seq2SeqTransformer, data: TranslationData, pairs: Sequence[tuple[str, str]] | None = None, beam_size: int = 1
) -> dict[str, float]:
    """Corpus BLEU (sacrebleu), exact-match accuracy in % and loss on ``pairs`` (default: the test split)."""
    pairs = data.test if pairs is None else pairs
    hypotheses: list[str] = []
    for i in range(0, len(pairs), 256):
        hypotheses += translate(model, data, [s for s, _ in pairs[i : i + 256]], beam_size, strict=False)
    references = [t for _, t in pairs]
    exact = 100.0 * sum(h == r for h, r in zip(hypotheses, references)) / len(pairs)
    return {"bleu": bleu(hypotheses, references), "exact": exact, "loss": loss_on(model, data, pairs)}


def _train_phase(
    model: Seq2SeqTransformer,
    config: MATConfig,
    data: TranslationData,
    num_steps: int,
    generator: torch.Generator,
    curve: dict[str, list[float]],
    offset: int,
    progress: bool,
    desc: str,
) -> History:
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, betas=(0.9, 0.98), eps=1e-9
    )  # fresh: Adam's moments reset
    scheduler = inverse_sqrt_schedule(optimizer, config.warmup)
    probe = data.train[: len(data.valid)]
    batches = _batches(data, config.batch_size, generator)
    count = 0

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        nonlocal count
        src, tgt = batch
        model.train()
        loss = label_smoothed_loss(model(src, tgt[:, :-1]), tgt[:, 1:], config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        count += 1
        if count % config.eval_every == 0 or count == num_steps:
            curve["step"].append(offset + count)
            curve["train_loss"].append(loss_on(model, data, probe))
            curve["valid_loss"].append(loss_on(model, data, data.valid))
        return {"loss": loss.item()}

    return fit(step, batches, num_steps, desc=desc, progress=progress)


def train(config: MATConfig, data: TranslationData | None = None, *, progress: bool = True) -> MATResult:
    """Train ``config`` from scratch (or with proximal initialisation) and evaluate it on the test split.

    ``metrics``: ``bleu``, ``exact`` (%), ``test_loss``, ``train_loss`` and ``valid_loss`` at the end (eval
    mode), ``gap = valid_loss - train_loss``, ``sec_per_update`` (training wall-clock, evaluation excluded).
    """
    data = load_data(config) if data is None else data
    generator = seed_everything(config.seed)
    curve: dict[str, list[float]] = {"step": [], "train_loss": [], "valid_loss": []}
    name = "Transformer" if config.num_branches == 1 else f"MAT N_a={config.num_branches} rho={config.drop_branch:g}"
    start = time.perf_counter()
    history = History()
    if config.proximal_steps:
        pretrained = build_model(config, data, num_branches=1)
        history = _train_phase(
            pretrained, config, data, config.proximal_steps, generator, curve, 0, progress, "Transformer (proximal)"
        )
        model = proximal_init(pretrained, build_model(config, data))
    else:
        model = build_model(config, data)
    rest = config.num_steps - config.proximal_steps
    second = _train_phase(model, config, data, rest, generator, curve, config.proximal_steps, progress, name)
    for s in second.steps:
        history.append(config.proximal_steps + s, {"loss": second["loss"][s - 1]})
    elapsed = time.perf_counter() - start
    # the loss probes ran inside the loop; time them once and take them out of the per-update figure
    tic = time.perf_counter()
    train_loss, valid_loss = loss_on(model, data, data.train[: len(data.valid)]), loss_on(model, data, data.valid)
    probe_time = (time.perf_counter() - tic) * len(curve["step"])
    test = evaluate(model, data)
    metrics = {
        "bleu": test["bleu"],
        "exact": test["exact"],
        "test_loss": test["loss"],
        "train_loss": train_loss,
        "valid_loss": valid_loss,
        "gap": valid_loss - train_loss,
        "sec_per_update": max(elapsed - probe_time, 0.0) / config.num_steps,
    }
    return MATResult(config, model, history, metrics, curve, count_parameters(model))
