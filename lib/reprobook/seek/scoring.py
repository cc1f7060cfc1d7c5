"""The SEEK scoring function and its two special cases, as pure functions on embedding tensors.

Every embedding of dimension ``d`` is cut into ``k`` segments of size ``s = d / k``; ``v_x`` is
segment ``x`` (0-indexed) and ``<a, b, c> = sum_i a_i b_i c_i``. The final score of the paper
(Xu et al., ACL 2020, the last of its scoring functions f1 -> f4; ``main.cpp`` of the official code)::

    f(h, r, t) = sum_{x=0}^{k-1} sum_{y=0}^{k-1} s(x, y) * <r_x, h_y, t_w(x, y)>

    w(x, y) = y              if x is even           (the index rule)
              (x + y) mod k  if x is odd
    s(x, y) = -1             if x is odd and x + y >= k, else +1   (the sign rule)

It costs ``k^2`` segment products of length ``d / k``, that is ``O(k d)`` per triple. ``k = 1`` is
DistMult and ``k = 2`` is ComplEx with (segment 0, segment 1) = (real, imaginary part).

The score is linear in each of ``h``, ``r`` and ``t``. :func:`seek_query` returns, for one side,
the ``d``-vector ``q`` with ``f = <q, e>`` for the embedding ``e`` of that side, so scoring a query
against *every* entity is one matrix product ``q @ E.T`` (the 1-vs-all scoring of the official code
and of 1-N training), and scoring many sampled negatives is one batched product.
"""

from __future__ import annotations

import functools
from typing import Literal

import torch

from reprobook._validate import check_choice

Side = Literal["head", "relation", "tail"]
SIDES = ("head", "relation", "tail")


def check_segments(dim: int, num_segments: int) -> int:
    """Return the segment size ``dim // num_segments``; ``ValueError`` unless ``k >= 1`` divides ``d``."""
    if not isinstance(num_segments, int) or num_segments < 1:
        raise ValueError(f"num_segments={num_segments!r} is out of range; expected an integer k >= 1")
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim={dim!r} is out of range; expected an integer d >= 1")
    if dim % num_segments:
        raise ValueError(
            f"dim={dim} is not divisible by num_segments={num_segments}: SEEK cuts every embedding into "
            f"k segments of equal size d / k; choose d a multiple of k "
            f"(e.g. {num_segments * max(1, dim // num_segments)})"
        )
    return dim // num_segments


def segment_tables(num_segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sign rule ``s(x, y)`` (float ``(k, k)``, +-1) and the index rule ``w(x, y)`` (long ``(k, k)``).

    Row ``x`` indexes the relation segment, column ``y`` the head segment; 0-indexed, so ``x = 0`` is
    even. For ``k = 2``: ``s = [[1, 1], [1, -1]]`` and ``w = [[0, 1], [1, 0]]``, ComplEx's four terms.
    """
    check_segments(num_segments, num_segments)
    k = num_segments
    x = torch.arange(k)[:, None].expand(k, k)  # relation segment
    y = torch.arange(k)[None, :].expand(k, k)  # head segment
    odd = x % 2 == 1
    index = torch.where(odd, (x + y) % k, y)  # w(x, y)
    sign = torch.where(odd & (x + y >= k), -1.0, 1.0)  # s(x, y)
    return sign, index


@functools.lru_cache(maxsize=64)
def _tables(num_segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`segment_tables`, built once per ``k`` (:func:`seek_score` asks for them at every call)."""
    return segment_tables(num_segments)


def _segments(e: torch.Tensor, k: int) -> torch.Tensor:
    """``(..., d)`` -> ``(..., k, d / k)``."""
    check_segments(e.shape[-1], k)
    return e.unflatten(-1, (k, e.shape[-1] // k))


def _check_same_dim(**embeddings: torch.Tensor) -> None:
    dims = {name: e.shape[-1] for name, e in embeddings.items()}
    if len(set(dims.values())) != 1:
        raise ValueError(f"embeddings must share their last dimension d, got {dims}")


def seek_score(h: torch.Tensor, r: torch.Tensor, t: torch.Tensor, num_segments: int) -> torch.Tensor:
    """SEEK score ``f(h, r, t)`` of the module docstring (the paper's final scoring function).

    ``h, r, t``: ``(..., d)`` broadcastable against each other, ``d`` divisible by ``k =
    num_segments``. Returns ``(...)``. Computed literally, as the double sum over ``(x, y)``; the
    training code uses :func:`seek_query` instead, which gives the same numbers.
    """
    _check_same_dim(h=h, r=r, t=t)
    k = num_segments
    H, R, T = _segments(h, k), _segments(r, k), _segments(t, k)
    sign, index = (table.to(h.device) for table in _tables(k))
    T_w = _pick_segments(T, index)  # (..., k, k, s): T_w[..., x, y, :] = t_{w(x, y)}
    products = R[..., :, None, :] * H[..., None, :, :] * T_w  # <r_x, h_y, t_w(x,y)> before the sum over i
    return (sign.to(products.dtype)[..., None] * products).sum(dim=(-3, -2, -1))


def _pick_segments(e: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``(..., k, s)`` -> ``(..., k, k, s)`` with entry ``[..., x, y, :] = e[..., table[x, y], :]``."""
    k = table.shape[0]
    return e.index_select(-2, table.flatten().to(e.device)).unflatten(-2, (k, k))


def negacyclic_shift(e: torch.Tensor, x: int) -> torch.Tensor:
    """Shift the ``k`` segments of ``e`` ``(..., k, s)`` by ``x`` places, negating those that wrap around.

    ``x > 0``: ``out_z = e_{z - x}`` for ``z >= x`` and ``-e_{z - x + k}`` for ``z < x``; ``x < 0`` undoes
    it. In polynomial terms it multiplies by ``X^x`` modulo ``X^k + 1``; for ``k = 2``, ``x = 1`` it is
    the multiplication by ``i`` of a complex number stored as (real, imaginary) segments.
    """
    k = e.shape[-2]
    x = x % (2 * k)
    flip = x >= k  # shifting by k negates everything
    x = x - k if flip else x
    out = torch.roll(e, x, dims=-2) if x else e
    if x:
        out = torch.cat([-out[..., :x, :], out[..., x:, :]], dim=-2)
    return -out if flip else out


def seek_query(a: torch.Tensor, b: torch.Tensor, num_segments: int, side: Side = "tail") -> torch.Tensor:
    """The vector ``q`` with ``f(h, r, t) = <q, e>``, where ``e`` is the embedding of ``side``.

    * ``side="tail"``: ``a = h``, ``b = r``; ``q_z = sum over (x, y) with w(x, y) = z of s(x, y) r_x * h_y``.
    * ``side="head"``: ``a = r``, ``b = t``; ``q_y = sum_x s(x, y) r_x * t_w(x, y)``.
    * ``side="relation"``: ``a = h``, ``b = t``; ``q_x = sum_y s(x, y) h_y * t_w(x, y)``.

    ``a, b``: ``(..., d)``; returns ``(..., d)``. Cost ``O(k d)``. Computed through a reading of
    the two rules derived in the chapter: relation segment ``x`` meets the head unchanged when ``x`` is
    even, and the head's :func:`negacyclic_shift` by ``x`` when ``x`` is odd (index rule: ``z = x + y``;
    sign rule: ``-1`` when ``x + y`` wraps past ``k``). Hence, with ``S_x`` that shift::

        q_tail = sum_x r_x * S_x(h),   q_head = sum_x r_x * S_{-x}(t),   q_rel[x] = sum_z (h * S_{-x}(t))_z

    with ``S_x`` the identity for even ``x``. :func:`seek_score` computes the double sum literally;
    the tests check that both agree.
    """
    check_choice("side", side, SIDES)
    _check_same_dim(a=a, b=b)
    k = num_segments
    A, B = torch.broadcast_tensors(_segments(a, k), _segments(b, k))

    def shifted(e: torch.Tensor, x: int) -> torch.Tensor:
        return e if x % 2 == 0 else negacyclic_shift(e, x)

    if side == "tail":  # A = h, B = r
        q = sum(B[..., x : x + 1, :] * shifted(A, x) for x in range(k))
    elif side == "head":  # A = r, B = t
        q = sum(A[..., x : x + 1, :] * shifted(B, -x) for x in range(k))
    else:  # A = h, B = t: one segment of q per relation segment x
        q = torch.stack([(A * shifted(B, -x)).sum(dim=-2) for x in range(k)], dim=-2)
    assert isinstance(q, torch.Tensor)
    return q.flatten(-2)


def distmult_score(h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """DistMult (Yang et al., 2015): ``<r, h, t> = sum_i r_i h_i t_i``. ``(..., d)`` -> ``(...)``."""
    _check_same_dim(h=h, r=r, t=t)
    return (h * r * t).sum(-1)


def complex_score(h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """ComplEx (Trouillon et al., 2016): ``Re(<r, h, conj(t)>)`` in complex arithmetic.

    Real tensors ``(..., d)`` hold the real parts in their first half and the imaginary parts in
    their second half (SEEK's segments 0 and 1). Written with ``torch.complex``, independently of SEEK.
    """
    _check_same_dim(h=h, r=r, t=t)
    if h.shape[-1] % 2:
        raise ValueError(f"ComplEx needs an even dimension (real and imaginary halves), got d={h.shape[-1]}")
    hc, rc, tc = (torch.complex(*e.chunk(2, dim=-1)) for e in (h, r, t))
    return (rc * hc * tc.conj()).sum(-1).real


def transe_score(h: torch.Tensor, r: torch.Tensor, t: torch.Tensor, margin: float = 0.0, p: int = 1) -> torch.Tensor:
    """TransE (Bordes et al., 2013) as a logit: ``margin - ||h + r - t||_p``. ``(..., d)`` -> ``(...)``."""
    _check_same_dim(h=h, r=r, t=t)
    if p == 1:  # abs().sum() is several times faster than vector_norm(ord=1) on CPU, forward and backward
        return margin - (h + r - t).abs().sum(-1)
    return margin - torch.linalg.vector_norm(h + r - t, ord=p, dim=-1)
