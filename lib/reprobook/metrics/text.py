"""Text and speech metrics: corpus BLEU (sacrebleu) and word/character error rates."""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu


def _check_parallel(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    """Hypotheses and references must be equally long lists of strings (not two bare strings)."""
    for name, value in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(value, str):
            raise TypeError(f"{name} must be a list of strings, got a single string {value!r}")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses and references must have the same length, got {len(hypotheses)} and {len(references)}"
        )
    if not references:
        raise ValueError("hypotheses and references must not be empty")


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU in 0..100 of ``hypotheses`` against one reference each.

    sacrebleu's defaults: ``13a`` tokenisation, exponential smoothing, case-sensitive. BLEU counts
    n-grams up to 4 over the whole corpus, so a corpus of sentences shorter than 4 tokens scores 0.
    """
    _check_parallel(hypotheses, references)
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def _edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1), one row at a time."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j - 1] + (x != y), previous[j] + 1, current[j - 1] + 1))
        previous = current
    return previous[-1]


def wer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus word error rate: total word edit distance over total reference words.

    Words are split on whitespace; normalise case and punctuation before calling. The result is a
    fraction (0 is perfect) and can exceed 1 when hypotheses insert words.
    """
    _check_parallel(hypotheses, references)
    return _error_rate([h.split() for h in hypotheses], [r.split() for r in references])


def cer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus character error rate: total character edit distance over total reference characters.

    Every character counts, spaces included; the strings are compared as given.
    """
    _check_parallel(hypotheses, references)
    return _error_rate([list(h) for h in hypotheses], [list(r) for r in references])


def _error_rate(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> float:
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("the references are all empty; the error rate is undefined")
    return sum(_edit_distance(h, r) for h, r in zip(hypotheses, references)) / total
