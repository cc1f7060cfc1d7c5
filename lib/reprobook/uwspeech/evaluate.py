"""Scoring: an English recogniser trained only for evaluation, ASR-BLEU and word error rate, unit purity.

The Translatotron protocol: a target-language recogniser transcribes each system's output and sacreBLEU compares the
transcripts with the reference target text. Here the recogniser is a small word-level CTC model (a convolutional
front end and two Transformer encoder layers) trained on the ``asr`` split, English utterances that no system ever
sees; it reads log-mels directly (no vocoder in the loop), with noise and time-smoothing augmentation so that it
also reads the slightly blurred mels the systems generate. Text is lower-cased and hyphens become spaces before scoring.

Unit purity (a clustering score): each unit frame gets the English phoneme espeak was producing at its centre;
``purity = sum_k max_p n(k, p) / N`` and ``nmi = I(code; phoneme) / H(phoneme)`` (the share of the phoneme's
uncertainty the code removes). Neither system saw English phonemes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reprobook.metrics import text as text_metrics
from reprobook.nn import eval_mode
from reprobook.train import Scores, fit, seed_everything
from reprobook.uwspeech.data import Utterances, UWSpeechData, pad_mels
from reprobook.uwspeech.model import DOWNSAMPLE, SpeechEncoder, UnitModel, UWSpeech, downsampled_lengths


def normalise_text(text: str) -> str:
    """Lower case, hyphens as spaces, single spaces: ``"I see eighty-five cats" -> "i see eighty five cats"``."""
    return " ".join(text.lower().replace("-", " ").split())


class Recognizer(nn.Module):
    """Word-level CTC recogniser ``(B, T, 80) -> (B, ceil(T/4), 1 + V)`` log-probs; ``words[0]`` is the blank.

    A convolutional front end (x4 downsampling) and two Transformer encoder layers (faster than a recurrent
    network on a CPU)."""

    def __init__(self, words: list[str], d_model: int = 96) -> None:
        super().__init__()
        self.words = ["<blank>", *words]
        self.encoder = SpeechEncoder(d_model, num_heads=4, layers=2, dropout=0.0)
        self.out = nn.Linear(d_model, len(self.words))

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, _ = self.encoder(mel, lengths)
        return F.log_softmax(self.out(h), -1)

    def encode(self, text: str) -> torch.Tensor:
        index = {w: i for i, w in enumerate(self.words)}
        return torch.tensor([index[w] for w in normalise_text(text).split() if w in index])

    @torch.no_grad()
    def transcribe(self, mels: list[torch.Tensor]) -> list[str]:
        """Greedy CTC decoding of ``(80, T_i)`` mels (collapse repeats, drop blanks)."""
        with eval_mode(self):
            batch, lengths = pad_mels(mels)
            best = self(batch, lengths).argmax(-1)
        texts = []
        for row, n in zip(best, downsampled_lengths(lengths)):
            ids = torch.unique_consecutive(row[: int(n)])
            texts.append(" ".join(self.words[i] for i in ids.tolist() if i != 0))
        return texts


def train_recognizer(
    data: UWSpeechData, num_steps: int, batch_size: int = 16, seed: int = 0, progress: bool = True
) -> Recognizer:
    """Train the evaluation recogniser on the ``asr`` split (English speech with text) through ``fit``."""
    seed_everything(seed)
    asr = data.split(data.target, "asr")
    words = sorted({w for s in data.speech[data.target]["asr"].texts for w in normalise_text(s).split()})
    model = Recognizer(words)
    targets = [model.encode(t) for t in asr.texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)

    def batches() -> Any:
        while True:
            yield torch.randint(len(asr), (batch_size,), generator=generator).tolist()

    def step(indices: list[int]) -> dict[str, float]:
        mel, lengths = pad_mels([asr.mels[i] for i in indices])
        if torch.rand(()) < 0.5:  # blur in time, as a generated mel is
            mel = F.avg_pool1d(mel.transpose(1, 2), 3, 1, 1, count_include_pad=False).transpose(1, 2)
        mel = mel + 0.2 * torch.randn_like(mel)
        log_probs = model(mel, lengths).transpose(0, 1)
        target = [targets[i] for i in indices]
        loss = F.ctc_loss(
            log_probs, torch.cat(target), downsampled_lengths(lengths), torch.tensor([len(t) for t in target]),
            zero_infinity=True,
        )  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    fit(step, batches(), num_steps, desc="evaluation recogniser", progress=progress)
    return model.eval()


def recognizer_for(data: UWSpeechData, num_steps: int = 0, progress: bool = False) -> Recognizer:
    """The evaluation recogniser of this run: trained once (``num_steps``, default by the data size), then cached."""
    if "recognizer" not in data.cache:
        steps = num_steps or max(60, 2 * len(data.split(data.target, "asr")))
        data.cache["recognizer"] = train_recognizer(data, steps, progress=progress)
    recognizer: Recognizer = data.cache["recognizer"]
    return recognizer


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus sacreBLEU (:func:`reprobook.metrics.text.bleu`) of normalised texts, 0-100."""
    return text_metrics.bleu([normalise_text(h) for h in hypotheses], [normalise_text(r) for r in references])


def word_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Word error rate (:func:`reprobook.metrics.text.wer`) of normalised texts, in percent."""
    return 100.0 * text_metrics.wer([normalise_text(h) for h in hypotheses], [normalise_text(r) for r in references])


def frame_phonemes(durations: torch.Tensor, phoneme_ids: torch.Tensor, num_units: int) -> torch.Tensor:
    """The phoneme id at the centre mel frame of each unit (``DOWNSAMPLE`` frames a unit): ``(num_units,)``."""
    per_frame = torch.repeat_interleave(phoneme_ids, durations)
    centres = (torch.arange(num_units) * DOWNSAMPLE + DOWNSAMPLE // 2).clamp_max(len(per_frame) - 1)
    return per_frame[centres]


def unit_purity(units: UnitModel, speech: Utterances) -> dict[str, float]:
    """Purity and normalised mutual information of the converter's codes against espeak's phonemes (module docs)."""
    with eval_mode(units), torch.no_grad():
        mel, lengths = pad_mels(speech.mels)
        codes = units.tokens(mel, lengths)
    pairs = torch.cat([
        torch.stack([c, frame_phonemes(d, p, len(c))], 1)
        for c, d, p in zip(codes, speech.durations, speech.phoneme_ids)
    ])  # fmt: skip
    k, p = int(pairs[:, 0].max()) + 1, int(pairs[:, 1].max()) + 1
    joint = torch.zeros(k, p).index_put_((pairs[:, 0], pairs[:, 1]), torch.ones(len(pairs)), accumulate=True)
    joint = joint / joint.sum()
    pk, pp = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    nz = joint > 0
    mi = float((joint[nz] * (joint[nz] / (pk * pp).expand_as(joint)[nz]).log()).sum())
    h_p = float(-(pp[pp > 0] * pp[pp > 0].log()).sum())
    used = pk.flatten() > 0
    pk_used = pk.flatten()[used]
    return {
        "purity": float(joint.max(1).values.sum()),
        "nmi": mi / h_p if h_p > 0 else math.nan,
        "codes_used": float(used.sum()),
        "perplexity": float(torch.exp(-(pk_used * pk_used.log()).sum())),
    }


@dataclass(kw_only=True)
class UWSpeechScores(Scores):
    """``bleu`` (ASR-BLEU, 0-100) and ``wer`` (%) of the translated speech; for unit systems the converter's
    ``purity``, ``nmi`` and code ``perplexity`` on the split's English speech (NaN for direct translation)."""

    bleu: float
    wer: float
    purity: float = math.nan
    nmi: float = math.nan
    perplexity: float = math.nan
    hypotheses: tuple[str, ...] = ()

    def row(self) -> dict[str, Any]:
        return {
            "method": self.label, "ASR-BLEU": self.bleu, "WER %": self.wer,
            "unit purity": self.purity, "unit NMI": self.nmi, "code perplexity": self.perplexity,
        }  # fmt: skip


def translations(model: nn.Module, data: UWSpeechData, split: str = "test", batch_size: int = 32) -> list[torch.Tensor]:
    """Each source utterance of ``split`` translated to a normalised target mel ``(80, T_i)``."""
    with eval_mode(model):
        return _in_batches(model.translate, data.split(data.source, split).mels, batch_size)  # type: ignore[arg-type]


def _in_batches(
    speech_to_mels: Callable[[torch.Tensor, torch.Tensor], list[torch.Tensor]],
    mels: list[torch.Tensor],
    batch_size: int = 32,
) -> list[torch.Tensor]:
    """``speech_to_mels(padded (B, T, 80), lengths)`` over ``mels`` ``(80, T_i)`` in padded batches; its ``(T_j, 80)``
    outputs come back as ``(80, T_j)``, one per input."""
    outputs: list[torch.Tensor] = []
    for start in range(0, len(mels), batch_size):
        mel, lengths = pad_mels(mels[start : start + batch_size], DOWNSAMPLE)
        outputs += [m.T for m in speech_to_mels(mel, lengths)]
    return outputs


def evaluate(
    model: nn.Module, data: UWSpeechData, split: str = "test", *, recognizer: Recognizer | None = None
) -> UWSpeechScores:
    """ASR-BLEU and WER of ``model``'s translations of ``split`` (a :class:`UWSpeech` pipeline or the direct
    baseline), plus unit purity for pipelines. ``recognizer``: default :func:`recognizer_for` ``(data)``."""
    recognizer = recognizer or recognizer_for(data)
    seed_everything(0)  # the direct baseline's prenet dropout stays on at inference
    hypotheses = recognizer.transcribe(translations(model, data, split))
    references = data.split(data.target, split).texts
    scores = UWSpeechScores(
        label=str(getattr(model, "label", type(model).__name__)),
        bleu=bleu(hypotheses, references),
        wer=word_error_rate(hypotheses, references),
        hypotheses=tuple(hypotheses),
    )
    if isinstance(model, UWSpeech):
        found = unit_purity(model.units, data.split(data.target, split))
        scores.purity, scores.nmi, scores.perplexity = found["purity"], found["nmi"], found["perplexity"]
    return scores


def recognizer_scores(
    data: UWSpeechData,
    split: str = "test",
    recognizer: Recognizer | None = None,
    units: UnitModel | None = None,
    label: str | None = None,
) -> UWSpeechScores:
    """The recogniser on the real target speech of ``split``: the ceiling of ASR-BLEU and the recogniser's own WER.

    With ``units``, the speech is first passed through their converter and inverter
    (:meth:`~reprobook.uwspeech.UnitModel.resynthesise`): the ceiling of a pipeline built on those units. ``label``
    names the row (default: which of the two it scores)."""
    recognizer = recognizer or recognizer_for(data)
    target = data.split(data.target, split)
    mels = target.mels
    if units is not None:
        with eval_mode(units), torch.no_grad():
            mels = _in_batches(units.resynthesise, target.mels)
    if label is None:
        label = "recogniser on real English speech" if units is None else "real English speech through the units"
    hypotheses = recognizer.transcribe(mels)
    return UWSpeechScores(
        label=label, bleu=bleu(hypotheses, target.texts), wer=word_error_rate(hypotheses, target.texts),
        hypotheses=tuple(hypotheses),
    )  # fmt: skip
