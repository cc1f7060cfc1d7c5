"""Training FastSpeech 2, 2s and the FastSpeech pipeline (teacher, duration extraction, distillation, student).

Every run uses the recipe of the notes (ming024's ``optimizer.py``): Adam (0.9, 0.98), eps 1e-9, linear warm-up then
inverse-square-root decay, gradient clipping at 1.0. Each run records a validation curve: the mel L1 against the
held-out recordings at ground-truth durations (so frames line up) with everything else predicted, and the
wall-clock spent training up to that point (evaluation time excluded). :func:`time_to_reach` reads the training
time to a target loss off such a curve: the paper's training-time comparison (Table 2) in miniature.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from reprobook.fastspeech2.baseline import TeacherConfig, TransformerTTS, extract_durations, focus_rate
from reprobook.fastspeech2.data import Batch, TTSData, TTSItem, batch_indices, batches, collate
from reprobook.fastspeech2.model import FastSpeech2, FastSpeech2Config, Stats
from reprobook.fastspeech2.wave import Discriminator, WaveDecoder, multi_resolution_stft_loss, random_slices
from reprobook.nn.transformer import inverse_sqrt_schedule
from reprobook.profiles import pick_default
from reprobook.train import History, fit, seed_everything


@dataclass
class TrainConfig:
    """One training run's recipe; sizes follow the profile."""

    num_steps: int = pick_default(smoke=12, book=400, full=20_000)
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = pick_default(smoke=4, book=100, full=4_000)
    grad_clip: float = 1.0
    eval_every: int = pick_default(smoke=6, book=40, full=1_000)
    seed: int = 0
    progress: bool = True


@dataclass
class RunResult:
    """A trained model, its per-step :class:`~reprobook.train.History` and its validation ``curve``
    (``step``, ``seconds`` of training so far, ``valid_mel``), and the total training seconds."""

    model: nn.Module
    history: History
    curve: dict[str, list[float]]
    seconds: float


def stats_of(data: TTSData) -> Stats:
    return Stats(data.lf0_mean, data.lf0_std, data.energy_mean, data.energy_std)


def _optimizer(
    params: Sequence[nn.Parameter] | Iterator[nn.Parameter], config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    opt = torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.98), eps=1e-9)
    return opt, inverse_sqrt_schedule(opt, config.warmup)


@torch.no_grad()
def validation_mel_l1(model: nn.Module, items: Sequence[TTSItem], batch_size: int = 32) -> float:
    """Mel L1 against the recordings at ground-truth durations, pitch and energy predicted (FastSpeech 2 and the
    student) or teacher-forced mel L1 (the autoregressive teacher)."""
    was_training = model.training
    model.eval()
    total, frames = 0.0, 0
    for start in range(0, len(items), batch_size):
        batch = collate(items[start : start + batch_size])
        if isinstance(model, TransformerTTS):
            mel = model(batch)[0]
        else:
            assert isinstance(model, FastSpeech2)
            mel = model.infer(batch.phonemes, batch.src_lengths, durations=batch.durations)["mel"]
        keep = torch.arange(batch.mel.shape[1])[None, :] < batch.mel_lengths[:, None]
        total += float(((mel - batch.mel).abs().mean(-1) * keep).sum())
        frames += int(keep.sum())
    model.train(was_training)
    return total / max(frames, 1)


def _run(model: nn.Module, data: TTSData, config: TrainConfig, stream: Iterator[Batch], desc: str) -> RunResult:
    """The shared loop: optimiser, schedule, clipping, validation curve with training-only wall-clock."""
    opt, schedule = _optimizer(model.parameters(), config)
    curve: dict[str, list[float]] = {"step": [], "seconds": [], "valid_mel": []}
    clock = {"seconds": 0.0, "step": 0}

    def step(batch: Batch) -> dict[str, float]:
        start = time.perf_counter()
        model.train()
        losses = model.loss(model(batch), batch)  # type: ignore[operator]
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        schedule.step()
        clock["seconds"] += time.perf_counter() - start
        clock["step"] += 1
        if clock["step"] % config.eval_every == 0 or clock["step"] == config.num_steps:
            curve["step"].append(clock["step"])
            curve["seconds"].append(clock["seconds"])
            curve["valid_mel"].append(validation_mel_l1(model, data.valid))
        return {k: float(v.detach()) for k, v in losses.items()}

    history = fit(step, stream, config.num_steps, desc=desc, progress=config.progress)
    model.eval()
    return RunResult(model, history, curve, clock["seconds"])


def train_fastspeech2(
    model_config: FastSpeech2Config,
    data: TTSData,
    config: TrainConfig | None = None,
    mels: Sequence[torch.Tensor] | None = None,
    durations: Sequence[torch.Tensor] | None = None,
    desc: str = "FastSpeech 2",
) -> RunResult:
    """Train a :class:`FastSpeech2` on ``data.train`` (recorded mels and espeak durations, or the given
    ``mels``/``durations`` aligned with ``data.train``: FastSpeech's distilled targets)."""
    config = config or TrainConfig()
    seed_everything(config.seed)
    model = FastSpeech2(model_config, stats_of(data))
    replace = {k: v for k, v in (("mels", mels), ("durations", durations)) if v is not None}
    return _run(model, data, config, batches(data.train, config.batch_size, config.seed, **replace), desc)


def train_teacher(teacher_config: TeacherConfig, data: TTSData, config: TrainConfig | None = None) -> RunResult:
    """Train the autoregressive Transformer TTS teacher with teacher forcing and guided attention."""
    config = config or TrainConfig()
    seed_everything(config.seed)
    model = TransformerTTS(teacher_config)
    return _run(model, data, config, batches(data.train, config.batch_size, config.seed), "AR teacher")


@dataclass
class Distilled:
    """The teacher's outputs on the training set: generated mels ``(T, 80)``, durations from its attention, the
    head they were read from, and the seconds it took (extraction and generation are one autoregressive pass)."""

    mels: list[torch.Tensor]
    durations: list[torch.Tensor]
    head: int
    seconds: float


def distill(teacher: TransformerTTS, items: Sequence[TTSItem], batch_size: int = 50) -> Distilled:
    """Sequence-level distillation and duration extraction in one autoregressive pass over ``items``."""
    start = time.perf_counter()
    mels, attentions, shapes = [], [], []
    for first in range(0, len(items), batch_size):
        batch = collate(items[first : first + batch_size])
        mel, attention = teacher.generate(batch.phonemes, batch.src_lengths, batch.mel_lengths)
        for b in range(mel.shape[0]):
            n, t = int(batch.src_lengths[b]), int(batch.mel_lengths[b])
            mels.append(mel[b, :t].clone())
            attentions.append(attention[b, :, :t, :n])
            shapes.append((n, t))
    focus = torch.stack([focus_rate(a[None], torch.tensor([t]))[0] for a, (_, t) in zip(attentions, shapes)]).mean(0)
    head = int(focus.argmax())
    durations = []
    for a, (n, t) in zip(attentions, shapes):
        d, _ = extract_durations(a[None], torch.tensor([n]), torch.tensor([t]), head)
        durations.append(d[0])
    return Distilled(mels, durations, head, time.perf_counter() - start)


@dataclass
class FastSpeechPipeline:
    """FastSpeech end to end: the teacher run, the distilled targets and the student run; ``seconds`` per stage."""

    teacher: RunResult
    distilled: Distilled
    student: RunResult

    @property
    def seconds(self) -> dict[str, float]:
        return {
            "teacher": self.teacher.seconds,
            "distillation": self.distilled.seconds,
            "student": self.student.seconds,
        }


def train_fastspeech(
    data: TTSData,
    teacher_config: TeacherConfig,
    student_config: FastSpeech2Config,
    teacher_train: TrainConfig | None = None,
    student_train: TrainConfig | None = None,
) -> FastSpeechPipeline:
    """Teacher -> durations and distilled mels -> student (a FastSpeech 2 without pitch and energy)."""
    if student_config.pitch != "none" or student_config.energy:
        raise ValueError("the FastSpeech student has no pitch or energy: use pitch='none', energy=False")
    teacher = train_teacher(teacher_config, data, teacher_train)
    assert isinstance(teacher.model, TransformerTTS)
    distilled = distill(teacher.model, data.train)
    student = train_fastspeech2(
        student_config, data, student_train, distilled.mels, distilled.durations, desc="FastSpeech student"
    )
    return FastSpeechPipeline(teacher, distilled, student)


def time_to_reach(curve: dict[str, list[float]], target: float, offset: float = 0.0) -> float | None:
    """Training seconds (plus ``offset``, e.g. the teacher's and distillation's) at the first validation point
    with ``valid_mel <= target``; None if the run never got there."""
    for seconds, value in zip(curve["seconds"], curve["valid_mel"]):
        if value <= target:
            return offset + seconds
    return None


# ------------------------------------------------------------------------------------------------------------------
# FastSpeech 2s
# ------------------------------------------------------------------------------------------------------------------


class FastSpeech2s(nn.Module):
    """FastSpeech 2 (whose mel decoder is the training-time auxiliary) plus a waveform decoder."""

    def __init__(self, acoustic: FastSpeech2, wave: WaveDecoder) -> None:
        nn.Module.__init__(self)
        self.acoustic, self.wave = acoustic, wave

    @torch.no_grad()
    def infer(self, phonemes: torch.Tensor, **controls: float) -> dict[str, torch.Tensor]:
        """:meth:`FastSpeech2.infer` without the mel decoder, plus ``waveform (B, T * 256)``."""
        self.eval()
        out = self.acoustic.infer(phonemes, decode_mel=False, **controls)  # type: ignore[arg-type]
        out["waveform"] = self.wave(out["hidden"])
        return out

    def synthesize(self, phonemes: torch.Tensor, **controls: float) -> torch.Tensor:
        """Phonemes ``(N,)`` -> waveform ``(L,)``; the mel decoder is not run."""
        return self.infer(phonemes, **controls)["waveform"][0]


@dataclass
class WaveConfig:
    """FastSpeech 2s training: slices of ``slice_frames`` frames, the GAN loss switched on after ``gan_start``."""

    num_steps: int = pick_default(smoke=6, book=60, full=50_000)
    slice_frames: int = 16
    gan_start: int = pick_default(smoke=3, book=30, full=10_000)
    adversarial_weight: float = 4.0
    lr: float = 2e-3
    channels: int = 32
    num_layers: int = 6


def train_fastspeech2s(
    model_config: FastSpeech2Config,
    data: TTSData,
    config: TrainConfig | None = None,
    wave_config: WaveConfig | None = None,
) -> tuple[FastSpeech2s, History, float]:
    """Joint training: the FastSpeech 2 losses on the full sequence (mel decoder as auxiliary) plus, on random
    slices, the multi-resolution STFT loss and (after ``gan_start`` steps) the LSGAN generator loss; the
    discriminator is trained with ``(D(x) - 1)^2 + D(G(z))^2``. Returns the model, history and seconds."""
    config = config or TrainConfig()
    wc = wave_config or WaveConfig()
    generator = seed_everything(config.seed)
    acoustic = FastSpeech2(model_config, stats_of(data))
    model = FastSpeech2s(acoustic, WaveDecoder(model_config.d_model, wc.channels, wc.num_layers))
    disc = Discriminator()
    opt_g, sched_g = _optimizer(model.parameters(), TrainConfig(lr=wc.lr, warmup=config.warmup))
    opt_d = torch.optim.Adam(disc.parameters(), lr=wc.lr / 2, betas=(0.5, 0.9))
    items = data.train
    clock = {"step": 0, "seconds": 0.0}

    def stream() -> Iterator[tuple[Batch, list[torch.Tensor]]]:
        for ids in batch_indices([i.mel.shape[0] for i in items], config.batch_size, config.seed):
            yield collate([items[i] for i in ids]), [items[i].waveform for i in ids]

    def step(pair: tuple[Batch, list[torch.Tensor]]) -> dict[str, float]:
        start = time.perf_counter()
        batch, waves = pair
        model.train()
        out = acoustic(batch)
        losses = acoustic.loss(out, batch)
        hidden, real = random_slices(out["hidden"], batch.mel_lengths, waves, wc.slice_frames, generator)
        fake = model.wave(hidden)
        stft = multi_resolution_stft_loss(fake, real)
        total = losses["loss"] + stft
        use_gan = clock["step"] >= wc.gan_start
        adv = ((disc(fake) - 1) ** 2).mean() if use_gan else torch.zeros(())
        total = total + wc.adversarial_weight * adv
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
        clock["step"] += 1
        clock["seconds"] += time.perf_counter() - start
        return {
            "loss": total.item(),
            "mel": losses["mel"].item(),
            "stft": stft.item(),
            "adv": adv.item(),
            "disc": d_loss.item(),
        }

    history = fit(step, stream(), wc.num_steps, desc="FastSpeech 2s", progress=config.progress)
    model.eval()
    return model, history, clock["seconds"]
