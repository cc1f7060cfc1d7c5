"""The CPU references' backward passes give the same bits on every call.

A table row gathered many times (a frequent candidate word, a pitch bin, a code) receives many gradient terms.
Indexing (``table[idx]``) sums them in a backward whose threads race, so two identical steps differed in the last
bits and a training run drifted apart between two executions of a chapter; ``F.embedding`` sums them in a fixed
order. The sizes are those of the chapters' training steps, where the race showed with two threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from reprobook.kernels import (
    candidate_cross_entropy_reference,
    variance_regulate_reference,
    vector_quantize_reference,
)


@pytest.fixture(autouse=True)
def two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _candidate_scoring(g: torch.Generator) -> tuple[Callable[..., torch.Tensor], tuple[torch.Tensor, ...]]:
    n, d, v, k = 64 * 18, 64, 104, 10  # the MC-BERT chapter's batch, width and vocabulary
    inputs = (
        torch.randn(n, d, generator=g, requires_grad=True),
        torch.randn(v, d, generator=g, requires_grad=True),
        torch.randn(v, generator=g, requires_grad=True),
        torch.randint(6, v, (n, k), generator=g),
        torch.randint(-1, 2, (n,), generator=g),
    )
    return candidate_cross_entropy_reference, inputs


def _length_regulator(g: torch.Generator) -> tuple[Callable[..., torch.Tensor], tuple[torch.Tensor, ...]]:
    b, n, frames, d, bins = 16, 40, 200, 64, 255
    mel2ph = torch.randint(1, n + 1, (b, frames), generator=g).sort(-1).values
    inputs = (
        torch.randn(b, n, d, generator=g, requires_grad=True),
        mel2ph,
        60 + 400 * torch.rand(b, frames, generator=g),
        torch.randn(b, frames, generator=g),
        torch.exp(torch.linspace(4.0, 6.2, bins)),
        torch.linspace(-2, 2, bins),
        torch.randn(bins + 1, d, generator=g, requires_grad=True),
        torch.randn(bins + 1, d, generator=g, requires_grad=True),
    )
    return variance_regulate_reference, inputs


def _vector_quantize(g: torch.Generator) -> tuple[Callable[..., torch.Tensor], tuple[torch.Tensor, ...]]:
    def commitment_and_codebook_terms(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        return vector_quantize_reference(z, codebook)[2]

    z = torch.randn(4000, 32, generator=g, requires_grad=True)
    return commitment_and_codebook_terms, (z, torch.randn(64, 32, generator=g, requires_grad=True))


@pytest.mark.parametrize("problem", [_candidate_scoring, _length_regulator, _vector_quantize], ids=lambda p: p.__name__)
def test_reference_backward_is_bitwise_repeatable(
    problem: Callable[[torch.Generator], tuple[Callable[..., torch.Tensor], tuple[torch.Tensor, ...]]],
) -> None:
    reference, inputs = problem(torch.Generator().manual_seed(0))
    leaves = [t for t in inputs if t.requires_grad]
    upstream = torch.randn(reference(*inputs).shape, generator=torch.Generator().manual_seed(1))
    first = None
    for _ in range(8):
        grads = torch.autograd.grad((reference(*inputs) * upstream).sum(), leaves)
        first = grads if first is None else first
        assert all(torch.equal(a, b) for a, b in zip(first, grads, strict=True))
