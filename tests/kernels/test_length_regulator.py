"""The fused length-regulator + variance-embedding kernel against its reference: values and gradients."""

from __future__ import annotations

import pytest
import torch

from reprobook.kernels import get, variance_regulate
from reprobook.kernels.testing import assert_matches_reference


def _mel2ph(durations: torch.Tensor, frames: int) -> torch.Tensor:
    """1-based phoneme index per frame, 0 beyond each utterance (a naive loop, independent of the library)."""
    out = torch.zeros(durations.shape[0], frames, dtype=torch.int64)
    for b, row in enumerate(durations.tolist()):
        index = [i + 1 for i, d in enumerate(row) for _ in range(d)][:frames]
        out[b, : len(index)] = torch.tensor(index, dtype=torch.int64)
    return out


def _inputs(
    b: int,
    n: int,
    d: int,
    frames: int,
    device: torch.device,
    num_bins: int = 255,
    dtype: torch.dtype = torch.float32,
    zero_durations: bool = True,
) -> tuple[torch.Tensor, ...]:
    low = 0 if zero_durations else 1
    durations = torch.randint(low, 5, (b, n))
    mel2ph = _mel2ph(durations, frames).to(device)
    h = torch.randn(b, n, d, device=device, dtype=dtype, requires_grad=True)
    pitch = (60 + 400 * torch.rand(b, frames, dtype=dtype)).to(device)
    energy = torch.randn(b, frames, dtype=dtype).to(device)
    pitch_bins = torch.exp(torch.linspace(4.0, 6.2, num_bins, dtype=dtype)).to(device)
    energy_bins = torch.linspace(-2, 2, num_bins, dtype=dtype).to(device)
    tables = [torch.randn(num_bins + 1, d, device=device, dtype=dtype, requires_grad=True) for _ in range(2)]
    return h, mel2ph, pitch, energy, pitch_bins, energy_bins, *tables


@pytest.mark.parametrize(
    "b, n, d, frames",
    [(2, 7, 16, 30), (3, 5, 96, 17), (1, 1, 1, 1), (2, 11, 130, 64), (1, 4, 8, 40)],  # d=130: three 64-chunks
    ids=str,
)
def test_matches_reference(b: int, n: int, d: int, frames: int, device: torch.device) -> None:
    assert_matches_reference("length_regulator", *_inputs(b, n, d, frames, device))


def test_few_boundaries_and_values_on_them(device: torch.device) -> None:
    h, mel2ph, pitch, energy, _, _, _, _ = _inputs(2, 6, 16, 25, device, num_bins=3)
    pitch_bins = torch.tensor([100.0, 200.0, 300.0], device=device)
    energy_bins = torch.tensor([0.0], device=device)
    pitch[0, :4] = torch.tensor([100.0, 200.0, 300.0, 50.0])  # exactly on a boundary: bucketize(right=False)
    energy[0, :2] = 0.0
    tables = [torch.randn(k, 16, device=device, requires_grad=True) for k in (4, 2)]
    assert_matches_reference("length_regulator", h, mel2ph, pitch, energy, pitch_bins, energy_bins, *tables)


def test_all_padding_and_empty_batch(device: torch.device) -> None:
    h, mel2ph, *rest = _inputs(2, 4, 8, 10, device)
    out = variance_regulate(h, torch.zeros_like(mel2ph), *rest, backend="triton")
    assert out.shape == (2, 10, 8) and bool((out == 0).all())
    h0, m0, *rest0 = _inputs(0, 4, 8, 10, device)
    assert variance_regulate(h0, m0, *rest0, backend="triton").shape == (0, 10, 8)


def test_float64(device: torch.device) -> None:
    inputs = _inputs(2, 5, 24, 19, device, dtype=torch.float64)
    assert_matches_reference("length_regulator", *inputs, atol=1e-12, rtol=1e-12)


def test_matches_the_model_path(device: torch.device) -> None:
    """With zero tables the kernel is the plain length regulator of reprobook.fastspeech2."""
    variance = pytest.importorskip("reprobook.fastspeech2.variance")  # needs the chapter's speech stack
    durations_to_mel2ph, length_regulate = variance.durations_to_mel2ph, variance.length_regulate

    durations = torch.tensor([[2, 0, 3, 1], [0, 0, 4, 2]])
    h = torch.randn(2, 4, 8, device=device)
    pitch = energy = torch.ones(2, 6, device=device)
    bins = torch.tensor([0.5], device=device)
    zeros = torch.zeros(2, 8, device=device)
    mel2ph = durations_to_mel2ph(durations).to(device)
    out = variance_regulate(h, mel2ph, pitch, energy, bins, bins, zeros, zeros, backend="triton")
    expected, lengths = length_regulate(h.cpu(), durations)
    torch.testing.assert_close(out.cpu(), expected)
    assert lengths.tolist() == [6, 6]


def test_bad_inputs(device: torch.device) -> None:
    h, mel2ph, pitch, energy, pb, eb, pt, et = _inputs(2, 4, 8, 10, device)
    with pytest.raises(ValueError, match="pitch contains NaN"):
        variance_regulate(h, mel2ph, torch.full_like(pitch, float("nan")), energy, pb, eb, pt, et, backend="triton")
    with pytest.raises(ValueError, match="energy must be frame-level"):
        variance_regulate(h, mel2ph, pitch, energy[:, :3], pb, eb, pt, et, backend="triton")
    with pytest.raises(ValueError, match="mel2ph must hold"):
        variance_regulate(h, mel2ph + 10, pitch, energy, pb, eb, pt, et, backend="triton")
    with pytest.raises(ValueError, match="pitch_table must be"):
        variance_regulate(h, mel2ph, pitch, energy, pb, eb, pt[:5], et, backend="triton")


def test_benchmark_inputs(device: torch.device) -> None:
    spec = get("length_regulator")
    inputs = spec.make_inputs(64, device, torch.float32)
    assert inputs[0].shape == (16, 8, 256) and inputs[1].shape == (16, 64)
    torch.testing.assert_close(spec(*inputs, backend="triton"), spec(*inputs, backend="reference"))
