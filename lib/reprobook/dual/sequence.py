"""Level 3: dual and multi-step dual learning of sentence translators, on number phrases in three languages.

English, French and Spanish number phrases from :func:`reprobook.data.text.parallel_corpus` share their meaning
("I see 97 dogs" / "je vois quatre-vingt-dix-sept chiens" / "veo noventa y siete perros"), like the English, French
and Spanish of MultiUN. A few triples are parallel; the rest of the training split is cut into three disjoint
monolingual sets, one per language. Each direction is a small :class:`~reprobook.nn.transformer.Seq2SeqTransformer`.

After a supervised warm start, every step keeps the supervised loss on a parallel batch and adds, for a monolingual
batch of sentences ``s`` in ``A`` (He et al., 2016, without the language-model reward):

* **dual loop** ``A -> B -> A``: sample ``K`` translations ``s_k ~ P_AB(. | s)``; the reward is the reconstruction
  log-likelihood ``r_k = log P_BA(s | s_k)``; ``P_AB`` gets the REINFORCE loss ``-(r_k - b_k) log P_AB(s_k | s)``
  with the leave-one-out baseline ``b_k`` (the mean of the other samples' rewards) and advantages scaled by their
  batch standard deviation; ``P_BA`` gets maximum likelihood on ``(s_k -> s)``;
* **multi-step loop** ``A -> B -> C -> A`` (Zhao et al., 2020): ``s_k ~ P_AB``, then ``t_k ~ P_BC(. | s_k)``; the
  reward ``log P_CA(s | t_k)`` trains ``P_AB`` and ``P_BC`` by REINFORCE and ``P_CA`` by maximum likelihood.

The reconstruction cross-entropy ``-log P_BA(s | s_k)`` is computed from the decoder's states by
:func:`reprobook.kernels.linear_cross_entropy` (the fused projection + log-softmax + gather; the PyTorch reference on
CPU). The pair the chapter scores is ``en <-> fr``; Spanish is the third language.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reprobook._validate import check_choice, check_float, check_int
from reprobook.data.text import Vocabulary, pad_batch, parallel_corpus
from reprobook.kernels import linear_cross_entropy
from reprobook.metrics import bleu
from reprobook.nn import eval_mode
from reprobook.nn.transformer import Seq2SeqTransformer, TransformerSizes, greedy_decode, label_smoothed_loss
from reprobook.profiles import pick_default
from reprobook.train import History, RunResult, Scores, fit, seed_everything

SEQ_LANGUAGES = ("en", "fr", "es")
SEQ_PAIR = ("en", "fr")
SEQ_METHODS = ("supervised", "dual", "multistep")
SEQ_LABELS = {"supervised": "(a) supervised", "dual": "(b) dual (He et al.)", "multistep": "(c) multi-step"}
MAX_LEN = 24
"""Longest sampled or decoded sentence (tokens); the corpus's longest is about a dozen words."""


@dataclass
class SequenceConfig:
    """One sequence run: data sizes, the Transformer, the warm start and the dual phase.

    ``corpus_size`` distinct meanings are drawn (80 % training split); ``parallel_size`` training triples are
    parallel, ``mono_size`` sentences per language are monolingual. ``warmup_steps`` supervised updates (all six
    directions), then the method until ``num_steps``; ``num_samples`` sampled translations per monolingual sentence;
    ``dual_weight`` scales the dual and loop terms against the supervised loss.
    """

    method: str = "dual"
    corpus_size: int = pick_default(smoke=400, book=2_000, full=10_000)
    parallel_size: int = pick_default(smoke=40, book=120, full=400)
    mono_size: int = pick_default(smoke=80, book=400, full=2_500)
    d_model: int = 64
    num_heads: int = 4
    layers: int = 2
    ffn_dim: int = 128
    dropout: float = 0.1
    lr: float = 1e-3
    batch_size: int = 32
    warmup_steps: int = pick_default(smoke=20, book=400, full=3_000)
    num_steps: int = pick_default(smoke=30, book=600, full=6_000)
    num_samples: int = 2
    dual_weight: float = 1.0
    eval_every: int = pick_default(smoke=10, book=100, full=500)
    corpus_seed: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("method", self.method, SEQ_METHODS)
        check_int("corpus_size", self.corpus_size, 50)
        check_int("parallel_size", self.parallel_size, 1)
        check_int("mono_size", self.mono_size, 1)
        train = self.corpus_size - 2 * (self.corpus_size // 10)
        if self.parallel_size + 3 * self.mono_size > train:
            raise ValueError(
                f"parallel_size + 3 * mono_size = {self.parallel_size + 3 * self.mono_size} sentences do not fit in "
                f"the {train} training meanings of corpus_size={self.corpus_size}"
            )
        for name in ("d_model", "num_heads", "layers", "ffn_dim", "batch_size", "eval_every"):
            check_int(name, getattr(self, name), 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        check_float("dropout", self.dropout, 0.0, 1.0, open_high=True)
        check_float("lr", self.lr, 0.0, open_low=True)
        check_int("num_steps", self.num_steps, 1)
        check_int("warmup_steps", self.warmup_steps, 0, self.num_steps)
        check_int("num_samples", self.num_samples, 2)
        check_float("dual_weight", self.dual_weight, 0.0)
        check_int("corpus_seed", self.corpus_seed, 0)
        check_int("seed", self.seed, 0)

    @property
    def label(self) -> str:
        return SEQ_LABELS[self.method]


@dataclass
class PhraseData:
    """Triples ``{language: sentence}`` (``parallel``, ``test``), monolingual sentences per language, vocabularies."""

    parallel: list[dict[str, str]]
    mono: dict[str, list[str]]
    test: list[dict[str, str]]
    vocabs: dict[str, Vocabulary]

    def check_language(self, language: str) -> str:
        return check_choice("language", language, SEQ_LANGUAGES)

    def encode(self, language: str, sentences: Sequence[str]) -> torch.Tensor:
        """``(B, T)`` padded ids with ``<bos>`` and ``<eos>``."""
        vocab = self.vocabs[self.check_language(language)]
        return pad_batch([vocab.encode(s) for s in sentences])[0]

    def decode(self, language: str, ids: torch.Tensor) -> list[str]:
        vocab = self.vocabs[self.check_language(language)]
        return [vocab.decode(row) for row in ids]


def load_phrases(config: SequenceConfig) -> PhraseData:
    """The triples of ``config``: the English sides of ``en -> fr`` and ``en -> es`` draws with the same seed match,
    so row ``i`` of both is one meaning in three languages."""
    en_fr = parallel_corpus("en", "fr", size=config.corpus_size, seed=config.corpus_seed)
    en_es = parallel_corpus("en", "es", size=config.corpus_size, seed=config.corpus_seed)

    def triples(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"en": en, "fr": fr, "es": es} for (en, fr), (_, es) in zip(a, b)]

    train = triples(en_fr.train, en_es.train)
    order = list(range(len(train)))
    random.Random(config.corpus_seed).shuffle(order)
    parallel = [train[i] for i in order[: config.parallel_size]]
    rest = order[config.parallel_size :]
    mono = {lang: [train[i][lang] for i in rest[k::3][: config.mono_size]] for k, lang in enumerate(SEQ_LANGUAGES)}
    vocabs = {lang: Vocabulary.build(t[lang] for t in train) for lang in SEQ_LANGUAGES}
    return PhraseData(parallel, mono, triples(en_fr.test, en_es.test), vocabs)


def build_translator(config: SequenceConfig, data: PhraseData, source: str, target: str) -> Seq2SeqTransformer:
    sizes = TransformerSizes(
        src_vocab=len(data.vocabs[data.check_language(source)]),
        tgt_vocab=len(data.vocabs[data.check_language(target)]),
        d_model=config.d_model,
        num_heads=config.num_heads,
        encoder_layers=config.layers,
        decoder_layers=config.layers,
        encoder_ff=config.ffn_dim,
        dropout=config.dropout,
        max_len=64,
    )
    return Seq2SeqTransformer(sizes)


class SequenceTranslators(nn.Module):
    """One Transformer per ordered pair of ``en``, ``fr``, ``es``: ``self[("en", "fr")]``."""

    def __init__(self, config: SequenceConfig, data: PhraseData) -> None:
        super().__init__()
        self.directions = [(a, b) for a in SEQ_LANGUAGES for b in SEQ_LANGUAGES if a != b]
        self.maps = nn.ModuleDict({f"{a}>{b}": build_translator(config, data, a, b) for a, b in self.directions})

    def __getitem__(self, direction: tuple[str, str]) -> Seq2SeqTransformer:
        key = f"{direction[0]}>{direction[1]}"
        if key not in self.maps:
            raise ValueError(f"no translator {key}; languages: {', '.join(SEQ_LANGUAGES)}")
        model: Seq2SeqTransformer = self.maps[key]  # type: ignore[assignment]
        return model


def decoder_states(model: Seq2SeqTransformer, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
    """The decoder's last states ``(B, T, d)``: :meth:`Seq2SeqTransformer.decode` without its output projection
    (``decode = decoder_states @ tgt_embed.weight.T``; a test keeps the two in step). The fused cross-entropy kernel
    takes these states and the projection's weight instead of the ``(B, T, V)`` logits."""
    memory, src_padding = model.encode(src)
    sizes = model.sizes
    y = model.tgt_embed(tgt_in) * math.sqrt(sizes.d_model) + model.positions[: tgt_in.shape[1]]
    y = F.dropout(y, sizes.dropout, model.training)
    padding = tgt_in == sizes.pad_id
    for layer in model.decoder:
        y = layer(y, memory, padding, src_padding)
    return y


def sentence_log_prob(model: Seq2SeqTransformer, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """``log P(tgt | src)`` per sentence ``(B,)``: ``tgt`` ``(B, T)`` with ``<bos>``/``<eos>``, padding not counted.

    Through :func:`~reprobook.kernels.linear_cross_entropy`: the per-token losses without the logits."""
    states = decoder_states(model, src, tgt[:, :-1])
    target = tgt[:, 1:]
    losses = linear_cross_entropy(states, model.tgt_embed.weight, target, ignore_index=model.sizes.pad_id)
    return -losses.sum(1)


@torch.no_grad()
def sample_translations(
    model: Seq2SeqTransformer, src: torch.Tensor, bos_id: int, eos_id: int, generator: torch.Generator
) -> torch.Tensor:
    """Ancestral sampling, one token at a time from the model's softmax (eval mode): ``src (B, S) -> (B, T)`` ids
    *with* ``<bos>`` and ``<eos>`` (padded after ``<eos>``; stopped at :data:`MAX_LEN` tokens)."""
    pad = model.sizes.pad_id
    with eval_mode(model):
        memory, padding = model.encode(src)
        out = torch.full((len(src), 1), bos_id, dtype=torch.long)
        done = torch.zeros(len(src), dtype=torch.bool)
        for _ in range(MAX_LEN):
            probs = model.decode(out, memory, padding)[:, -1].softmax(-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(1).masked_fill(done, pad)
            out = torch.cat([out, token[:, None]], 1)
            done |= token == eos_id
            if done.all():
                break
    unfinished = ~done  # end every sentence with <eos>, so each reads as a complete target
    return torch.cat([out, torch.where(unfinished, eos_id, pad)[:, None]], 1)


def _advantages(rewards: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` rewards -> leave-one-out advantages scaled by their batch standard deviation."""
    k = rewards.shape[1]
    advantage = rewards - (rewards.sum(1, keepdim=True) - rewards) / (k - 1)
    return advantage / (advantage.std() + 1e-6)


def dual_loop_loss(
    models: SequenceTranslators, data: PhraseData, sentences: Sequence[str], loop: Sequence[str], num_samples: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, float]:  # fmt: skip
    """The sampled loss of one loop over ``loop`` (``("en", "fr")`` for ``en -> fr -> en``, ``("en", "fr", "es")``
    for ``en -> fr -> es -> en``) on monolingual ``sentences`` of ``loop[0]``; returns ``(loss, mean reward)``.

    Every step but the last is sampled and trained by REINFORCE with the final reconstruction log-likelihood as the
    reward; the last (back to ``loop[0]``) is trained by maximum likelihood on the sampled inputs."""
    languages = [data.check_language(lang) for lang in loop]
    if len(languages) not in (2, 3) or len(set(languages)) != len(languages):
        raise ValueError(f"loop must name 2 or 3 different languages, got {loop!r}")
    src = data.encode(languages[0], sentences).repeat_interleave(num_samples, 0)  # (B K, S)
    steps = list(itertools.pairwise(languages))
    inputs, current = [src], src
    for a, b in steps:
        vocab = data.vocabs[b]
        current = sample_translations(models[a, b], current, vocab.bos_id, vocab.eos_id, generator)
        inputs.append(current)
    back = models[languages[-1], languages[0]]
    reconstruction = sentence_log_prob(back, current, src)  # (B K,)
    rewards = reconstruction.detach().view(-1, num_samples)
    advantage = _advantages(rewards).flatten()
    policy = sum(
        -(advantage * sentence_log_prob(models[a, b], x, y)).mean() for (a, b), x, y in zip(steps, inputs, inputs[1:])
    )
    lengths = (src[:, 1:] != back.sizes.pad_id).sum(1)
    mle = -(reconstruction / lengths).mean()  # per token, like the supervised loss
    return torch.as_tensor(policy) + mle, float(rewards.mean())


@dataclass(kw_only=True)
class SequenceScores(Scores):
    """sacreBLEU and exact match (%) per direction of the scored pair, and their means."""

    bleu: float
    exact: float
    directions: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"method": self.label, "BLEU": self.bleu, "exact match (%)": self.exact, **self.directions}


def translate_phrases(model: Seq2SeqTransformer, data: PhraseData, source: str, target: str, sentences: Sequence[str]
                      ) -> list[str]:  # fmt: skip
    """Greedy translations of ``sentences`` (unknown words read as ``<unk>``)."""
    vocab = data.vocabs[data.check_language(target)]
    with eval_mode(model):
        ids = greedy_decode(model, data.encode(source, sentences), vocab.bos_id, vocab.eos_id, MAX_LEN)
    return data.decode(target, ids)


def evaluate_sequences(models: SequenceTranslators, data: PhraseData, split: str = "test", *, label: str = ""
                       ) -> SequenceScores:  # fmt: skip
    """BLEU (sacreBLEU) and exact match of ``en -> fr`` and ``fr -> en`` on ``split`` (``"test"`` or
    ``"parallel"``, the training triples)."""
    triples = getattr(data, check_choice("split", split, ("test", "parallel")))
    directions: dict[str, float] = {}
    exact = []
    for a, b in (SEQ_PAIR, SEQ_PAIR[::-1]):
        hypotheses = translate_phrases(models[a, b], data, a, b, [t[a] for t in triples])
        references = [t[b] for t in triples]
        directions[f"BLEU {a}->{b}"] = bleu(hypotheses, references)
        exact.append(100.0 * sum(h == r for h, r in zip(hypotheses, references)) / len(triples))
    return SequenceScores(label=label, bleu=sum(directions.values()) / 2, exact=sum(exact) / 2, directions=directions)


@dataclass(kw_only=True)
class SequenceResult(RunResult):
    """Trained :class:`SequenceTranslators`, the history (``history.curve("bleu")`` on the test triples) and the
    final :class:`SequenceScores` (``test``)."""

    config: SequenceConfig
    model: SequenceTranslators
    test: SequenceScores


def _batches(items: Sequence[Any], batch_size: int, generator: torch.Generator) -> Iterator[list[Any]]:
    """Endless batches of ``items``: a fresh permutation every epoch (a batch is at most all of them)."""
    size = min(batch_size, len(items))
    while True:
        order = torch.randperm(len(items), generator=generator).tolist()
        for i in range(0, len(order) - size + 1, size):
            yield [items[j] for j in order[i : i + size]]


def train_sequence(
    config: SequenceConfig | None = None,
    data: PhraseData | None = None,
    *,
    progress: bool = True,
    start: SequenceResult | None = None,
) -> SequenceResult:
    """Train ``config``: ``warmup_steps`` supervised updates, then the method until ``num_steps``.

    ``start``: a finished run to continue from instead (a copy of its models and history; its ``num_steps`` must be
    this config's ``warmup_steps``), so that the three methods share one supervised warm start."""
    config = SequenceConfig() if config is None else config
    data = load_phrases(config) if data is None else data
    generator = seed_everything(config.seed)
    if start is None:
        models, history = SequenceTranslators(config, data), History()
    else:
        if start.history.num_steps != config.warmup_steps:
            raise ValueError(
                f"start ran {start.history.num_steps} steps; this config warms up for {config.warmup_steps}"
            )
        models, history = copy.deepcopy(start.model), copy.deepcopy(start.history)
    optimizer = torch.optim.Adam(models.parameters(), lr=config.lr, betas=(0.9, 0.98))
    parallel = _batches(data.parallel, config.batch_size, generator)
    mono = {lang: _batches(data.mono[lang], config.batch_size, generator) for lang in SEQ_LANGUAGES}
    a, b = SEQ_PAIR
    loops: dict[str, list[tuple[str, ...]]] = {
        "dual": [(a, b), (b, a)],
        "multistep": [(a, b), (b, a), (a, b, "es"), (b, a, "es")],
    }

    def phase(method: str, num_steps: int, desc: str) -> None:
        def step(_: object) -> dict[str, float]:
            models.train()
            batch = next(parallel)
            terms: dict[str, torch.Tensor] = {}
            ids = {lang: data.encode(lang, [t[lang] for t in batch]) for lang in SEQ_LANGUAGES}
            sup = sum(
                label_smoothed_loss(models[x, y](ids[x], ids[y][:, :-1]), ids[y][:, 1:], smoothing=0.1)
                for x, y in models.directions
            )
            terms["supervised"] = torch.as_tensor(sup)
            loss = terms["supervised"]
            rewards = []
            for loop in loops.get(method, []):
                part, reward = dual_loop_loss(models, data, next(mono[loop[0]]), loop, config.num_samples, generator)
                loss = loss + config.dual_weight * part
                rewards.append(reward)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(models.parameters(), 1.0)
            optimizer.step()
            values = {"loss": loss.item(), "supervised": terms["supervised"].item()}
            return values | ({"reward": sum(rewards) / len(rewards)} if rewards else {})

        def probe(_: int) -> dict[str, float]:
            return {"bleu": evaluate_sequences(models, data).bleu}

        fit(step, [None], num_steps, evaluate=probe, eval_every=config.eval_every, history=history, desc=desc,
            progress=progress)  # fmt: skip

    if start is None and config.warmup_steps:
        phase("supervised", config.warmup_steps, "supervised warm start (6 directions)")
    if config.num_steps > history.num_steps:
        phase(config.method, config.num_steps - history.num_steps, config.label)
    test = evaluate_sequences(models, data, label=config.label)
    metrics = {"bleu": test.bleu, "exact": test.exact}
    return SequenceResult(config=config, model=models, history=history, metrics=metrics, test=test)
