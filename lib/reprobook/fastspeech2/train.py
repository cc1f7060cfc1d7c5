"""One run of FastSpeech 2, the FastSpeech pipeline or FastSpeech 2s: one config, one loop, one result.

:class:`FastSpeech2Config` describes a run: which system (``model``), the data, the sizes and the training recipe,
with the teacher's (:class:`~reprobook.fastspeech2.baselines.TeacherConfig`) and the waveform decoder's
(:class:`~reprobook.fastspeech2.wave.WaveConfig`) nested in it. :func:`train` trains that system through
:func:`reprobook.train.fit`:

* ``model="fastspeech2"``: FastSpeech 2 on the recordings and espeak's durations (Sec. 2.2 of the paper);
* ``model="fastspeech"``: the pipeline FastSpeech 2 replaces: the autoregressive teacher, one distillation pass
  (durations from its attention, its generated mels as targets), then the student, a FastSpeech 2 without pitch
  and energy (``pitch="none", energy=False``);
* ``model="fastspeech2s"``: FastSpeech 2 plus the waveform decoder, trained jointly (Sec. 2.4).

Every run uses the recipe of the notes (ming024's ``optimizer.py``): Adam (0.9, 0.98), eps 1e-9, linear warm-up then
inverse-square-root decay, gradient clipping at 1.0. Each run records a validation curve, ``valid_mel``: the mel L1
against the held-out recordings at ground-truth durations (so frames line up) with everything else predicted
(:func:`~reprobook.fastspeech2.evaluate.validation_mel_l1`), with the seconds of training up to each point
(evaluation excluded): ``result.history.seconds_to("valid_mel", target)`` reads the training time to a target
loss off it, the paper's training-time comparison (Table 2) in miniature.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from reprobook._validate import check_choice, check_float, check_int
from reprobook.fastspeech2.baselines import Distilled, TeacherConfig, TransformerTTS, distill
from reprobook.fastspeech2.data import Batch, TTSData, batch_indices, batches, collate, load_data
from reprobook.fastspeech2.evaluate import validation_mel_l1
from reprobook.fastspeech2.model import F0_HIGH, F0_LOW, PITCH_MODES, FastSpeech2, FastSpeech2s, Stats
from reprobook.fastspeech2.wave import Discriminator, WaveConfig, WaveDecoder, multi_resolution_stft_loss, random_slices
from reprobook.nn.transformer import inverse_sqrt_schedule
from reprobook.profiles import pick_default
from reprobook.train import History, RunResult, fit, seed_everything

MODELS = ("fastspeech2", "fastspeech", "fastspeech2s")
DATASETS = ("espeak", "ljspeech")


@dataclass
class FastSpeech2Config:
    """One run: the system, its data, its sizes and its recipe. Profile defaults are picked when it is created.

    ``model``: ``"fastspeech2"``, ``"fastspeech"`` (the teacher-student pipeline; it needs ``pitch="none",
    energy=False``, the student having no variance predictor) or ``"fastspeech2s"``.

    Data (:func:`~reprobook.fastspeech2.load_data`): ``dataset`` (``"espeak"``, offline, or ``"ljspeech"``, an
    opt-in download), ``num_utterances`` in all, ``num_valid`` and ``num_test`` of them held out, ``data_seed`` for
    the corpus and the split.

    Sizes: the paper has d = 256, 4 + 4 FFT blocks, 2 heads, conv kernels 9/1, filter 1024, 256 pitch and energy
    bins; the ``full`` profile. ``book`` shrinks it to fit 2 CPU cores: d = 64, 2 + 2 blocks, kernels 3/1, and 64
    bins, since each of 256 bins' embeddings would see too few frames to learn in a few hundred steps (measured:
    with 256 bins the Griffin-Lim audio came out far less often voiced). ``pitch``: ``"cwt"`` (the paper's pitch
    spectrogram), ``"frame"`` (v1's frame-level F0) or ``"none"``; ``energy``: whether to predict and embed energy;
    ``pitch_range_hz``: the span of the log-spaced pitch bins.

    Recipe: ``num_steps`` steps of ``batch_size`` utterances, Adam at ``lr`` with ``warmup`` steps of warm-up, gradient
    norm clipped at ``grad_clip``, a validation point every ``eval_every`` steps, ``seed`` for the weights and the
    batches. ``teacher``: the FastSpeech teacher's sizes and recipe; ``wave``: FastSpeech 2s's waveform decoder and
    its joint training (its own ``num_steps`` and ``lr``).
    """

    model: Literal["fastspeech2", "fastspeech", "fastspeech2s"] = "fastspeech2"
    dataset: Literal["espeak", "ljspeech"] = "espeak"
    num_utterances: int = pick_default(smoke=60, book=400, full=3_000)
    num_valid: int = pick_default(smoke=8, book=24, full=100)
    num_test: int = pick_default(smoke=8, book=40, full=200)
    data_seed: int = 0
    d_model: int = pick_default(smoke=32, book=64, full=256)
    num_heads: int = 2
    encoder_layers: int = pick_default(smoke=1, book=2, full=4)
    decoder_layers: int = pick_default(smoke=1, book=2, full=4)
    d_ff: int = pick_default(smoke=64, book=192, full=1024)
    kernel_sizes: tuple[int, int] = pick_default(smoke=(3, 1), book=(3, 1), full=(9, 1))
    dropout: float = 0.1
    predictor_filter: int = pick_default(smoke=32, book=64, full=256)
    predictor_dropout: float = 0.5
    num_bins: int = pick_default(smoke=64, book=64, full=256)
    pitch_range_hz: tuple[float, float] = (F0_LOW, F0_HIGH)
    pitch: Literal["cwt", "frame", "none"] = "cwt"
    energy: bool = True
    max_len: int = 2048
    num_steps: int = pick_default(smoke=12, book=400, full=20_000)
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = pick_default(smoke=4, book=100, full=4_000)
    grad_clip: float = 1.0
    eval_every: int = pick_default(smoke=6, book=40, full=1_000)
    seed: int = 0
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    wave: WaveConfig = field(default_factory=WaveConfig)

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODELS)
        check_choice("dataset", self.dataset, DATASETS)
        check_int("num_valid", self.num_valid, 1)
        check_int("num_test", self.num_test, 1)
        check_int("num_utterances", self.num_utterances, 1)
        if self.num_utterances - self.num_valid - self.num_test < 2:
            raise ValueError(
                f"num_utterances={self.num_utterances} leaves too little for training after "
                f"{self.num_valid} + {self.num_test} held out"
            )
        check_int("data_seed", self.data_seed)
        for name in ("d_model", "num_heads", "encoder_layers", "decoder_layers", "d_ff", "predictor_filter"):
            check_int(name, getattr(self, name), 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        sizes = self.kernel_sizes
        if not (
            isinstance(sizes, tuple)
            and len(sizes) == 2
            and all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2 for k in sizes)
        ):
            raise ValueError(f"kernel_sizes must be a tuple of two odd positive ints, e.g. (9, 1); got {sizes!r}")
        check_float("dropout", self.dropout, 0, 1)
        check_float("predictor_dropout", self.predictor_dropout, 0, 1)
        check_int("num_bins", self.num_bins, 2)
        span = self.pitch_range_hz
        if not (isinstance(span, tuple) and len(span) == 2):
            raise ValueError(f"pitch_range_hz must be a tuple (low, high) in Hz, got {span!r}")
        low = check_float("pitch_range_hz[0]", span[0], 0, open_low=True)
        check_float("pitch_range_hz[1]", span[1], low, open_low=True)
        check_choice("pitch", self.pitch, PITCH_MODES)
        if not isinstance(self.energy, bool):
            raise ValueError(f"energy must be True or False, got {self.energy!r}")
        if self.model == "fastspeech" and (self.pitch != "none" or self.energy):
            raise ValueError(
                f"model='fastspeech' is the FastSpeech student, which has no pitch or energy predictor, but "
                f"pitch={self.pitch!r}, energy={self.energy!r}; write "
                "FastSpeech2Config(model='fastspeech', pitch='none', energy=False), or "
                "replace(config, model='fastspeech', pitch='none', energy=False)"
            )
        check_int("max_len", self.max_len, 1)
        for name in ("num_steps", "batch_size", "warmup", "eval_every"):
            check_int(name, getattr(self, name), 1)
        check_float("lr", self.lr, 0, open_low=True)
        check_float("grad_clip", self.grad_clip, 0, open_low=True)
        check_int("seed", self.seed)
        if not isinstance(self.teacher, TeacherConfig):
            raise ValueError(f"teacher must be a TeacherConfig, got {type(self.teacher).__name__}")
        if not isinstance(self.wave, WaveConfig):
            raise ValueError(f"wave must be a WaveConfig, got {type(self.wave).__name__}")

    @property
    def label(self) -> str:
        """The system's name in tables: ``"FastSpeech 2"``, ``"FastSpeech 2 (without energy)"``, ``"FastSpeech"``,
        ``"FastSpeech 2s"``."""
        if self.model == "fastspeech":
            return "FastSpeech"
        changes = {"none": ["without pitch"], "frame": ["frame F0"], "cwt": []}[self.pitch]
        changes += [] if self.energy else ["without energy"]
        name = "FastSpeech 2s" if self.model == "fastspeech2s" else "FastSpeech 2"
        return f"{name} ({', '.join(changes)})" if changes else name


@dataclass(kw_only=True)
class FastSpeech2Result(RunResult):
    """What :func:`train` returns: :class:`~reprobook.train.RunResult` plus, for the FastSpeech pipeline, its first
    two stages.

    ``model``: the trained network, in eval mode, ready to synthesise (FastSpeech 2, the FastSpeech student, or
    :class:`~reprobook.fastspeech2.FastSpeech2s`); ``history``: its per-step losses and validation curve,
    ``history.curve("valid_mel")``; ``metrics``: the last ``valid_mel``. For ``model="fastspeech"``, ``teacher`` is
    the teacher's own run and ``distilled`` its outputs on the training set; :attr:`stage_seconds` times each stage.
    """

    teacher: RunResult | None = None
    distilled: Distilled | None = None

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Seconds per stage: ``teacher``, ``distillation`` and ``student`` for the FastSpeech pipeline (the student's
        are :attr:`seconds`), ``training`` for a single run."""
        if self.teacher is None or self.distilled is None:
            return {"training": self.seconds}
        return {"teacher": self.teacher.seconds, "distillation": self.distilled.seconds, "student": self.seconds}


def _stats(data: TTSData) -> Stats:
    return Stats(data.lf0_mean, data.lf0_std, data.energy_mean, data.energy_std)


def build_model(config: FastSpeech2Config, data: TTSData) -> nn.Module:
    """A fresh, untrained :class:`FastSpeech2` (``model="fastspeech2"``, or the student for ``"fastspeech"``) or
    :class:`FastSpeech2s`, with ``data``'s vocabulary and statistics. The FastSpeech teacher is
    ``TransformerTTS(config.teacher, len(data.vocab))``."""
    acoustic = FastSpeech2(config, len(data.vocab), _stats(data))
    if config.model == "fastspeech2s":
        return FastSpeech2s(acoustic, WaveDecoder(config.d_model, config.wave.channels, config.wave.num_layers))
    return acoustic


def _optimizer(
    model: nn.Module, lr: float, warmup: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)
    return opt, inverse_sqrt_schedule(opt, warmup)


def _fit(
    model: FastSpeech2 | TransformerTTS,
    data: TTSData,
    stream: Iterable[Batch],
    *,
    num_steps: int,
    lr: float,
    warmup: int,
    grad_clip: float,
    eval_every: int,
    desc: str,
    progress: bool,
) -> History:
    """Train ``model`` on its own loss through :func:`fit`, with the recipe's optimiser, schedule and clipping and
    the ``valid_mel`` curve; the model comes back in eval mode."""
    opt, schedule = _optimizer(model, lr, warmup)

    def step(batch: Batch) -> dict[str, float]:
        losses = model.loss(model(batch), batch)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        schedule.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    def validate(_: int) -> dict[str, float]:
        return {"valid_mel": validation_mel_l1(model, data.valid)}

    model.train()
    history = fit(step, stream, num_steps, evaluate=validate, eval_every=eval_every, desc=desc, progress=progress)
    model.eval()
    return history


def _last_validation(history: History) -> dict[str, float]:
    return {"valid_mel": history.curve("valid_mel")[1][-1]}


def train(
    config: FastSpeech2Config | None = None, data: TTSData | None = None, *, progress: bool = True
) -> FastSpeech2Result:
    """Train the system ``config.model`` names (``config=None``: the profile's FastSpeech 2; ``data=None``:
    :func:`~reprobook.fastspeech2.load_data`) and return it with its history.

    ``"fastspeech2"`` trains on ``data.train``'s recordings and espeak durations. ``"fastspeech"`` trains the
    teacher (``config.teacher``), distils the training set through it (:func:`~reprobook.fastspeech2.baselines.
    distill`) and trains the student on the teacher's mels and durations; the result's ``model`` is the student.
    ``"fastspeech2s"`` trains FastSpeech 2 and the waveform decoder jointly for ``config.wave.num_steps`` steps.
    Each run is seeded with ``config.seed`` first; training seconds (fetching batches included, validation not)
    are measured by :func:`~reprobook.train.fit`.
    """
    config = FastSpeech2Config() if config is None else config
    if not isinstance(config, FastSpeech2Config):
        raise TypeError(f"config must be a FastSpeech2Config, got {type(config).__name__}")
    data = load_data(config) if data is None else data
    if not isinstance(data, TTSData):
        raise TypeError(f"data must be the TTSData of load_data(config), got {type(data).__name__}")
    if config.model == "fastspeech":
        return _train_pipeline(config, data, progress)
    if config.model == "fastspeech2s":
        return _train_fastspeech2s(config, data, progress)
    seed_everything(config.seed)
    model = build_model(config, data)
    assert isinstance(model, FastSpeech2)
    history = _fit(
        model,
        data,
        batches(data.train, config.batch_size, config.seed),
        num_steps=config.num_steps,
        lr=config.lr,
        warmup=config.warmup,
        grad_clip=config.grad_clip,
        eval_every=config.eval_every,
        desc=config.label,
        progress=progress,
    )
    return FastSpeech2Result(config=config, model=model, history=history, metrics=_last_validation(history))


def _train_pipeline(config: FastSpeech2Config, data: TTSData, progress: bool) -> FastSpeech2Result:
    """Teacher -> durations and distilled mels -> student (a FastSpeech 2 without pitch and energy)."""
    recipe = config.teacher
    seed_everything(config.seed)
    teacher = TransformerTTS(recipe, len(data.vocab))
    teacher_history = _fit(
        teacher,
        data,
        batches(data.train, recipe.batch_size, config.seed),
        num_steps=recipe.num_steps,
        lr=recipe.lr,
        warmup=recipe.warmup,
        grad_clip=recipe.grad_clip,
        eval_every=config.eval_every,
        desc="AR teacher",
        progress=progress,
    )
    teacher_run = RunResult(
        config=recipe, model=teacher, history=teacher_history, metrics=_last_validation(teacher_history)
    )
    distilled = distill(teacher, data.train)
    seed_everything(config.seed)
    student = build_model(config, data)
    assert isinstance(student, FastSpeech2)
    targets = {"mels": distilled.mels, "durations": distilled.durations}
    history = _fit(
        student,
        data,
        batches(data.train, config.batch_size, config.seed, **targets),
        num_steps=config.num_steps,
        lr=config.lr,
        warmup=config.warmup,
        grad_clip=config.grad_clip,
        eval_every=config.eval_every,
        desc="FastSpeech student",
        progress=progress,
    )
    return FastSpeech2Result(
        config=config,
        model=student,
        history=history,
        metrics=_last_validation(history),
        teacher=teacher_run,
        distilled=distilled,
    )


def _train_fastspeech2s(config: FastSpeech2Config, data: TTSData, progress: bool) -> FastSpeech2Result:
    """Joint training: the FastSpeech 2 losses on the full sequence (mel decoder as auxiliary) plus, on random
    slices, the multi-resolution STFT loss and (after ``wave.gan_start`` steps) the LSGAN generator loss; the
    discriminator is trained with ``(D(x) - 1)^2 + D(G(z))^2``."""
    wave = config.wave
    generator = seed_everything(config.seed)
    model = build_model(config, data)
    assert isinstance(model, FastSpeech2s)
    disc = Discriminator()
    opt_g, sched_g = _optimizer(model, wave.lr, config.warmup)
    opt_d = torch.optim.Adam(disc.parameters(), lr=wave.lr / 2, betas=(0.5, 0.9))
    items = data.train
    taken = 0

    def stream() -> Iterator[tuple[Batch, list[torch.Tensor]]]:
        for ids in batch_indices([i.mel.shape[0] for i in items], config.batch_size, config.seed):
            yield collate([items[i] for i in ids]), [items[i].waveform for i in ids]

    def step(pair: tuple[Batch, list[torch.Tensor]]) -> dict[str, float]:
        nonlocal taken
        batch, waves = pair
        out = model.acoustic(batch)
        losses = model.acoustic.loss(out, batch)
        hidden, real = random_slices(out["hidden"], batch.mel_lengths, waves, wave.slice_frames, generator)
        fake = model.wave(hidden)
        stft = multi_resolution_stft_loss(fake, real)
        total = losses["loss"] + stft
        use_gan = taken >= wave.gan_start
        adv = ((disc(fake) - 1) ** 2).mean() if use_gan else torch.zeros(())
        total = total + wave.adversarial_weight * adv
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt_g.step()
        sched_g.step()
        d_loss = torch.zeros(())
        if use_gan:
            d_loss = ((disc(real) - 1) ** 2).mean() + (disc(fake.detach()) ** 2).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        taken += 1
        return {
            "loss": total.item(),
            "mel": losses["mel"].item(),
            "stft": stft.item(),
            "adv": adv.item(),
            "disc": d_loss.item(),
        }

    def validate(_: int) -> dict[str, float]:
        return {"valid_mel": validation_mel_l1(model.acoustic, data.valid)}

    model.train()
    history = fit(
        step,
        stream(),
        wave.num_steps,
        evaluate=validate,
        eval_every=config.eval_every,
        desc=config.label,
        progress=progress,
    )
    model.eval()
    return FastSpeech2Result(config=config, model=model, history=history, metrics=_last_validation(history))
