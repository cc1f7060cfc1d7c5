"""The mix-attention kernel against its PyTorch reference: output, target mass and gradients, with padding on
both key ranges and odd lengths."""

from __future__ import annotations

import pytest
import torch

from reprobook.kernels import mix_attention
from reprobook.kernels.testing import assert_matches_reference


def _inputs(b: int, h: int, n: int, m: int, d: int, device: torch.device) -> list[torch.Tensor]:
    return [torch.randn(b, h, t, d, device=device, requires_grad=True) for t in (n, m, m, n, n)]


@pytest.mark.parametrize(
    "shape", [(2, 2, 5, 7, 8), (1, 1, 1, 1, 4), (2, 3, 19, 33, 16), (3, 2, 70, 9, 8), (1, 2, 17, 80, 5)], ids=str
)
def test_matches_reference_with_padding_on_both_ranges(shape: tuple[int, ...], device: torch.device) -> None:
    b, h, n, m, d = shape
    args = _inputs(b, h, n, m, d, device)
    src_pad = torch.zeros(b, m, dtype=torch.bool, device=device)
    src_pad[-1, m // 2 + 1 :] = True
    tgt_pad = torch.zeros(b, n, dtype=torch.bool, device=device)
    tgt_pad[0, n // 2 + 1 :] = True
    assert_matches_reference("mix_attention", *args, src_pad, tgt_pad)
    assert_matches_reference("mix_attention", *args, None, None)


def test_mass_is_the_target_share_and_uniform_keys_give_lengths(device: torch.device) -> None:
    q = torch.zeros(1, 1, 4, 8, device=device)  # zero queries: uniform attention over the visible keys
    ks, vs, kt, vt = (torch.randn(1, 1, t, 8, device=device) for t in (6, 6, 4, 4))
    src_pad = torch.tensor([[False, False, False, False, True, True]], device=device)
    _, mass = mix_attention(q, ks, vs, kt, vt, src_pad, None, backend="triton")
    assert torch.allclose(mass, torch.full_like(mass, 4 / 8))  # 4 target keys of 8 visible ones
    assert not mass.requires_grad


def test_no_source_keys_puts_all_mass_on_the_target(device: torch.device) -> None:
    q, kt, vt = (torch.randn(2, 2, 3, 8, device=device) for _ in range(3))
    empty = torch.zeros(2, 2, 0, 8, device=device)
    out, mass = mix_attention(q, empty, empty, kt, vt, backend="triton")
    ref_out, _ = mix_attention(q, empty, empty, kt, vt, backend="reference")
    assert torch.allclose(mass, torch.ones_like(mass)) and torch.allclose(out, ref_out, atol=1e-5)


def test_bad_shapes_are_refused() -> None:
    q, k = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match="k_tgt"):
        mix_attention(q, k, k, torch.randn(1, 3, 3, 8), torch.randn(1, 3, 3, 8), backend="reference")
    with pytest.raises(ValueError, match="src_padding"):
        mix_attention(q, k, k, q, q, torch.zeros(1, 5, dtype=torch.bool), backend="reference")
