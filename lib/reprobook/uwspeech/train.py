"""``UWSpeechConfig``, ``build_model`` and ``train``: the two-stage pipeline (units, then translator) or the direct
baseline, each through :func:`reprobook.train.fit`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reprobook._validate import check_choice, check_float, check_int
from reprobook.data.speech import VOICES
from reprobook.profiles import pick_default
from reprobook.train import History, RunResult, fit, seed_everything
from reprobook.uwspeech.baselines import DirectTranslator
from reprobook.uwspeech.data import UWSpeechData, load_data, pad_mels
from reprobook.uwspeech.model import BOS, DOWNSAMPLE, EOS, FIRST_CODE, UnitModel, UnitTranslator, UWSpeech

SYSTEMS = ("xlvae", "vqvae", "direct")
LABELS = {"xlvae": "UWSpeech (XL-VAE)", "vqvae": "VQ-VAE pipeline", "direct": "direct translation"}


@dataclass
class UWSpeechConfig:
    """One run. ``system``: ``"xlvae"`` (UWSpeech), ``"vqvae"`` (the same pipeline with ``lam = 0``) or ``"direct"``.

    Data: ``num_utterances`` parallel utterances per language (``num_asr`` English ones train only the evaluation
    recogniser, ``num_valid`` and ``num_test`` are held out), ``source``/``target``/``written`` languages.
    Units: ``codebook_size`` codes of ``code_dim`` numbers (raised to the written phoneme inventory's size if
    smaller), ``lam`` the XL-VAE weight, ``beta`` the commitment weight, ``temperature`` of the CTC logits,
    ``unit_steps``. Translator (and direct baseline): ``d_model``, ``num_heads``, ``layers``, ``translator_steps``.
    The direct baseline trains for ``unit_steps + translator_steps`` steps: the pipeline's two stages together.
    """

    system: str = "xlvae"
    source: str = "es"
    target: str = "en"
    written: tuple[str, ...] = ("de", "fr", "it")
    num_utterances: int = pick_default(smoke=40, book=800, full=4000)
    # 440 for the recogniser in the book: with 140 it learned their sentences by heart, and its word error on real
    # English swung between 19 and 35 % with its seed and machine (book/appendix/uwspeech-seeds-cpu.txt)
    num_asr: int = pick_default(smoke=12, book=440, full=1000)
    num_valid: int = pick_default(smoke=4, book=20, full=200)
    num_test: int = pick_default(smoke=6, book=60, full=400)
    codebook_size: int = 64
    code_dim: int = 64
    unit_width: int = pick_default(smoke=32, book=96, full=256)
    lam: float = 1.0
    beta: float = 0.25
    temperature: float = 0.1
    unit_steps: int = pick_default(smoke=8, book=600, full=20_000)
    d_model: int = pick_default(smoke=32, book=96, full=256)
    num_heads: int = 4
    layers: int = pick_default(smoke=1, book=2, full=3)
    # no dropout on two CPU cores: it cost a quarter of each translator step, did not help the pipelines and held the
    # direct baseline back by about 6 BLEU (book/appendix/uwspeech-seeds-cpu.txt)
    dropout: float = pick_default(smoke=0.0, book=0.0, full=0.1)
    translator_steps: int = pick_default(smoke=8, book=800, full=20_000)
    recognizer_steps: int = pick_default(smoke=30, book=1200, full=4000)
    batch_size: int = pick_default(smoke=8, book=16, full=32)
    lr: float = 1e-3
    seed: int = 0
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_choice("system", self.system, SYSTEMS)
        for name in ("source", "target"):
            check_choice(name, getattr(self, name), sorted(VOICES))
        self.written = tuple(self.written)
        for lang in self.written:
            check_choice("written", lang, sorted(VOICES))
        check_int("num_utterances", self.num_utterances, 4)
        check_int("num_asr", self.num_asr, 1)
        check_int("num_valid", self.num_valid, 1)
        check_int("num_test", self.num_test, 1)
        if self.num_asr + self.num_valid + self.num_test + 2 > self.num_utterances:
            raise ValueError(
                f"num_utterances={self.num_utterances} must exceed num_asr + num_valid + num_test + 1 = "
                f"{self.num_asr + self.num_valid + self.num_test + 1} to leave training utterances"
            )
        check_int("codebook_size", self.codebook_size, 2)
        for name in ("code_dim", "unit_width", "d_model", "num_heads", "layers", "batch_size"):
            check_int(name, getattr(self, name), 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of num_heads={self.num_heads}")
        for name in ("unit_steps", "translator_steps", "recognizer_steps"):
            check_int(name, getattr(self, name), 1)
        check_float("lam", self.lam, 0.0)
        check_float("beta", self.beta, 0.0)
        check_float("temperature", self.temperature, 0.0, open_low=True)
        check_float("dropout", self.dropout, 0.0, 1.0, open_high=True)
        check_float("lr", self.lr, 0.0, open_low=True)
        check_int("seed", self.seed, 0)
        check_int("data_seed", self.data_seed, 0)

    @property
    def label(self) -> str:
        if self.system == "xlvae":
            return (
                f"{LABELS['xlvae']}, {len(self.written)} written"
                if self.written != ("de", "fr", "it")
                else LABELS["xlvae"]
            )
        return LABELS[self.system]

    @property
    def effective_lam(self) -> float:
        """The XL-VAE weight actually used: ``lam`` for XL-VAE, 0 for the VQ-VAE baseline (or no written language)."""
        return self.lam if self.system == "xlvae" and self.written else 0.0


@dataclass(kw_only=True)
class UWSpeechResult(RunResult):
    """``model``: a :class:`UWSpeech` pipeline or a :class:`DirectTranslator`. ``unit_history``: the converter/
    inverter stage (pipelines only; ``history`` then continues its step count and clock with the translator)."""

    unit_history: History | None = None


def written_code_map(data: UWSpeechData, languages: tuple[str, ...] | None = None) -> dict[int, int]:
    """Phoneme id (in ``data.phonemes``) -> code index, for every phoneme of the written ``languages`` (default:
    all of the data's), in the inventory's order. Code ``k`` is the unit CTC teaches to mean that phoneme."""
    languages = data.written if languages is None else languages
    ids = sorted({int(i) for lang in languages for p in data.speech[lang]["train"].phoneme_ids for i in p})
    return {pid: code for code, pid in enumerate(ids)}


def build_model(config: UWSpeechConfig, data: UWSpeechData) -> nn.Module:
    """A fresh pipeline (:class:`UWSpeech`: units + translator) or :class:`DirectTranslator`, sized for ``data``."""
    if config.system == "direct":
        return DirectTranslator(config.d_model, config.num_heads, config.layers, config.dropout)
    size = max(config.codebook_size, len(written_code_map(data, config.written)) if config.effective_lam > 0 else 0)
    units = UnitModel(size, config.code_dim, config.unit_width, config.temperature)
    translator = UnitTranslator(size, config.d_model, config.num_heads, config.layers, config.dropout)
    return UWSpeech(units, translator, config.label)


def _index_batches(n: int, batch_size: int, generator: torch.Generator) -> Any:
    while True:
        yield torch.randint(n, (min(batch_size, n),), generator=generator).tolist()


def train_units(config: UWSpeechConfig, data: UWSpeechData, units: UnitModel, progress: bool = True) -> History:
    """Stage 1: converter + inverter on target speech (VQ-VAE loss), plus ``lam`` x CTC on written speech."""
    target = data.split(data.target, "train")
    codes = written_code_map(data, config.written)
    written = [(lang, i) for lang in config.written for i in range(len(data.speech[lang]["train"]))]
    optimizer = torch.optim.AdamW(units.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    lam = config.effective_lam

    def step(indices: list[int]) -> dict[str, float]:
        mel, lengths = pad_mels([target.mels[i] for i in indices], DOWNSAMPLE)
        batch = None
        if lam > 0:
            picks = torch.randint(len(written), (len(indices),), generator=generator).tolist()
            chosen = [data.speech[written[j][0]]["train"] for j in picks]
            w_mel, w_len = pad_mels([u.mels[written[j][1]] for u, j in zip(chosen, picks)], DOWNSAMPLE)
            targets = [
                torch.tensor([codes[int(p)] + 1 for p in u.phoneme_ids[written[j][1]]]) for u, j in zip(chosen, picks)
            ]
            padded = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True)
            batch = (w_mel, w_len, padded, torch.tensor([len(t) for t in targets]))
        losses = units.losses(mel, lengths, batch, lam, config.beta)
        optimizer.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(units.parameters(), 1.0)
        optimizer.step()
        return {k: v.item() for k, v in losses.items()}

    units.train()
    return fit(step, _index_batches(len(target), config.batch_size, generator), config.unit_steps,
               desc=f"units ({config.label})", progress=progress)  # fmt: skip


def unit_tokens(units: UnitModel, mels: list[torch.Tensor]) -> list[torch.Tensor]:
    """Translator targets: ``[BOS, FIRST_CODE + codes..., EOS]`` per target utterance (converter in eval mode)."""
    units.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(mels), 64):
            mel, lengths = pad_mels(mels[start : start + 64], DOWNSAMPLE)
            for codes in units.tokens(mel, lengths):
                out.append(torch.cat([torch.tensor([BOS]), codes + FIRST_CODE, torch.tensor([EOS])]))
    return out


def train_translator(
    config: UWSpeechConfig, data: UWSpeechData, model: UWSpeech, history: History, progress: bool = True
) -> History:
    """Stage 2: the translator, source speech -> the converter's units of the parallel target speech."""
    source = data.split(data.source, "train")
    tokens = unit_tokens(model.units, data.split(data.target, "train").mels)
    valid_src = data.split(data.source, "valid")
    valid_tok = unit_tokens(model.units, data.split(data.target, "valid").mels)
    translator = model.translator
    optimizer = torch.optim.AdamW(translator.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.lr, total_steps=config.translator_steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(config.seed + 1)

    def step(indices: list[int]) -> dict[str, float]:
        mel, lengths = pad_mels([source.mels[i] for i in indices], DOWNSAMPLE)
        batch = torch.nn.utils.rnn.pad_sequence([tokens[i] for i in indices], batch_first=True)
        losses = translator.loss(mel, lengths, batch)
        optimizer.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(translator.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        return {k: v.item() for k, v in losses.items()}

    def evaluate(_: int) -> dict[str, float]:
        translator.eval()
        with torch.no_grad():
            mel, lengths = pad_mels(valid_src.mels, DOWNSAMPLE)
            found = translator.loss(mel, lengths, torch.nn.utils.rnn.pad_sequence(valid_tok, batch_first=True))
        translator.train()
        return {"valid_loss": float(found["loss"]), "valid_accuracy": float(found["accuracy"])}

    translator.train()
    return fit(step, _index_batches(len(source), config.batch_size, generator), config.translator_steps,
               evaluate=evaluate, eval_every=max(1, config.translator_steps // 5), history=history,
               desc=f"translator ({config.label})", progress=progress)  # fmt: skip


def train_direct(config: UWSpeechConfig, data: UWSpeechData, model: DirectTranslator, progress: bool = True) -> History:
    """The direct baseline: source mel -> target mel for ``unit_steps + translator_steps`` steps."""
    source, target = data.split(data.source, "train"), data.split(data.target, "train")
    steps = config.unit_steps + config.translator_steps
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(config.seed + 1)
    valid_src, valid_tgt = data.split(data.source, "valid"), data.split(data.target, "valid")

    def step(indices: list[int]) -> dict[str, float]:
        mel, lengths = pad_mels([source.mels[i] for i in indices], DOWNSAMPLE)
        tgt, tgt_len = pad_mels([target.mels[i] for i in indices], DOWNSAMPLE)
        losses = model.loss(mel, lengths, tgt, tgt_len)
        optimizer.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        return {k: v.item() for k, v in losses.items()}

    def evaluate(_: int) -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            mel, lengths = pad_mels(valid_src.mels, DOWNSAMPLE)
            tgt, tgt_len = pad_mels(valid_tgt.mels, DOWNSAMPLE)
            found = model.loss(mel, lengths, tgt, tgt_len)
        model.train()
        return {"valid_loss": float(found["loss"]), "valid_l1": float(found["l1"])}

    model.train()
    batches = _index_batches(len(source), config.batch_size, generator)
    every = max(1, steps // 5)
    return fit(step, batches, steps, evaluate=evaluate, eval_every=every, desc="direct translation", progress=progress)


def train(
    config: UWSpeechConfig | None = None, data: UWSpeechData | None = None, *, progress: bool = True
) -> UWSpeechResult:
    """Train the system ``config`` names (default: the profile's UWSpeech run) and return its result."""
    config = config or UWSpeechConfig()
    data = data if data is not None else load_data(config)
    if (data.source, data.target) != (config.source, config.target) or not set(config.written) <= set(data.written):
        raise ValueError(
            f"the data holds source {data.source!r}, target {data.target!r}, written {data.written}; the config asks "
            f"for {config.source!r}, {config.target!r}, {config.written}: load the data with this config"
        )
    seed_everything(config.seed)
    model = build_model(config, data)
    if isinstance(model, DirectTranslator):
        history = train_direct(config, data, model, progress)
        return UWSpeechResult(config=config, model=model, history=history, metrics=_last(history))
    assert isinstance(model, UWSpeech)
    unit_history = train_units(config, data, model.units, progress)
    carried = History(num_steps=unit_history.num_steps, seconds=unit_history.seconds)
    history = train_translator(config, data, model, carried, progress)
    metrics = {
        **_last(history),
        "recon": unit_history.last("recon", 20),
        "perplexity": unit_history.last("perplexity", 20),
    }
    if "ctc" in unit_history.metrics:
        metrics["ctc"] = unit_history.last("ctc", 20)
    return UWSpeechResult(
        config=config, model=model.eval(), history=history, metrics=metrics, unit_history=unit_history
    )


def _last(history: History) -> dict[str, float]:
    return {
        k: v for k, v in (history.evaluations[-1].metrics.items() if history.evaluations else []) if math.isfinite(v)
    }
