"""Accuracy of the NAR and AR systems, and CoMMA's density-ratio curve R(p) on held-out data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import sacrebleu
import torch
from torchaudio.functional import edit_distance

from reprobook._validate import check_float
from reprobook.comma.baselines import ARModel
from reprobook.comma.data import Batch, CoMMAData, Item, chunks
from reprobook.comma.model import CoMMA, density_ratio, mask_targets
from reprobook.nn import eval_mode, model_device
from reprobook.nn.transformer import padding_mask
from reprobook.train import Scores

P_GRID = tuple(round(0.1 * k, 1) for k in range(1, 11))
"""The masking rates of the R(p) curves: 0.1, 0.2, ..., 1.0."""
METRIC = {"nmt": "WER", "asr": "PER", "tts": "mel L1"}


@torch.no_grad()
def nar_generate(model: CoMMA, batch: Batch) -> list[torch.Tensor]:
    """Fully non-autoregressive output: every position masked and predicted at once. Token tasks use the length
    the model predicts; TTS uses the true number of frames (an oracle length, as FastSpeech's durations). ``batch``
    is moved to the model's device; the outputs come back on the CPU."""
    batch = batch.to(model_device(model))
    if model.tokens:
        memory, src_pad = model.encoder(batch.src, batch.src_len)
        keep = (~src_pad)[..., None].float()
        lengths = model.length_head((memory * keep).sum(1) / keep.sum(1)).argmax(-1).clamp_min(1)
        tgt = torch.full((len(lengths), int(lengths.max())), model.mask_id, dtype=torch.long, device=lengths.device)
        batch = Batch(batch.src, batch.src_len, tgt, lengths, batch.align)
    masked = ~padding_mask(batch.tgt_len, batch.tgt.shape[1])
    prediction = model(batch, masked).prediction
    if model.tokens:
        prediction = prediction.argmax(-1)
    return [prediction[i, : int(n)].cpu() for i, n in enumerate(batch.tgt_len)]


def generate(model: CoMMA | ARModel, items: Sequence[Item]) -> list[torch.Tensor]:
    """Outputs of ``model`` on ``items``: greedy AR decoding, or fully NAR decoding."""
    outs: list[torch.Tensor] = []
    with eval_mode(model):
        for batch in chunks(items, 64):
            outs += model.generate(batch) if isinstance(model, ARModel) else nar_generate(model, batch)
    return outs


def _tokens(data: CoMMAData, ids: torch.Tensor) -> list[str]:
    assert data.tgt_vocab is not None
    return data.tgt_vocab.decode(ids.tolist()).split()


def error_rate(data: CoMMAData, items: Sequence[Item], outputs: Sequence[torch.Tensor]) -> float:
    """Token tasks: edit distance to the closest valid reference over its length, summed over the split (WER for
    NMT, phoneme error rate for ASR). TTS: mean absolute error of the normalised log-mel frames."""
    if not data.tokens_out:
        errors = [(y - x.tgt).abs().mean() for y, x in zip(outputs, items)]
        return float(torch.stack(errors).mean())
    edits = total = 0
    for y, x in zip(outputs, items):
        hyp = _tokens(data, y)
        best = min((edit_distance(hyp, ref.split()), len(ref.split())) for ref in x.refs)
        edits, total = edits + best[0], total + best[1]
    return edits / max(1, total)


def bleu(data: CoMMAData, items: Sequence[Item], outputs: Sequence[torch.Tensor]) -> float:
    """Multi-reference sacreBLEU against every valid rendering (NMT; NaN for the other tasks)."""
    if data.task != "nmt":
        return math.nan
    hyps = [" ".join(_tokens(data, y)) for y in outputs]
    width = max(len(x.refs) for x in items)
    streams = [[x.refs[min(k, len(x.refs) - 1)] for x in items] for k in range(width)]
    return float(sacrebleu.corpus_bleu(hyps, streams).score)


@torch.no_grad()
def ratio_curve(
    model: CoMMA,
    data: CoMMAData,
    split: str = "test",
    ps: Sequence[float] = P_GRID,
    seed: int = 0,
    layers: Sequence[int] | None = None,
    length_normalised: bool = True,
) -> list[float]:
    """``R(p)`` for each masking rate in ``ps``: the mean over the split's sentences of
    :func:`~reprobook.comma.model.density_ratio` (masks drawn from ``seed``, the same for every model), over all
    decoder layers or only the ``layers`` listed (0 = the first); with ``length_normalised=False``, the target's
    share of the attention instead."""
    if not isinstance(model, CoMMA):
        raise TypeError(f"ratio_curve needs a CoMMA model, got {type(model).__name__}")
    curve, dev = [], model_device(model)
    with eval_mode(model):
        for k, p in enumerate(ps):
            check_float("p", p, 0, 1)
            generator = torch.Generator().manual_seed(seed * 1000 + k)
            values = []
            for batch in chunks(data.split(split), 64):
                batch = batch.to(dev)
                masked = mask_targets(batch.tgt_len, p, generator)
                masses = model(batch, masked).masses
                chosen = masses if layers is None else [masses[i] for i in layers]
                values.append(density_ratio(chosen, masked, batch.src_len, batch.tgt_len, length_normalised).cpu())
            curve.append(float(torch.cat(values).mean()))
    return curve


@dataclass(kw_only=True)
class CoMMAScores(Scores):
    """``error``: the task's error (WER, PER or mel L1) of the system's own decoding (fully NAR for CoMMA and
    NAR, greedy for AR); ``bleu``: NMT only; ``r_mean``: the mean of R(p) over :data:`P_GRID` (CoMMA/NAR)."""

    task: str
    error: float
    bleu: float = math.nan
    r_mean: float = math.nan

    def row(self) -> dict[str, object]:
        return {
            "method": self.label,
            "task": self.task,
            "metric": METRIC[self.task],
            "error": self.error,
            "BLEU": self.bleu,
            "mean R(p)": self.r_mean,
        }


def evaluate(model: CoMMA | ARModel, data: CoMMAData, split: str = "test", *, label: str = "") -> CoMMAScores:
    """Decode ``split`` with ``model`` and score it (:class:`CoMMAScores`)."""
    items = data.split(split)
    outputs = generate(model, items)
    r_mean = math.nan if isinstance(model, ARModel) else sum(ratio_curve(model, data, split)) / len(P_GRID)
    name = label or type(model).__name__
    return CoMMAScores(
        label=name,
        task=data.task,
        error=error_rate(data, items, outputs),
        bleu=bleu(data, items, outputs),
        r_mean=r_mean,
    )
