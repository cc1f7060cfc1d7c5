"""Multi-branch attention, drop-branch and proximal initialisation (Fan et al., 2020, arXiv 2006.10270).

Multi-branch attention (the paper's Eq. for ``mAttn``; the residual ``Q`` and the LayerNorm live in the layer)::

    mAttn_{N_a,M}(Q, K, V) = (1 / N_a) * sum_{i=1..N_a} Attn_M^(i)(Q, K, V)

Every branch ``i`` is an independent :class:`~reprobook.nn.transformer.MultiHeadAttention` with its own
``W^Q, W^K, W^V, W^O``. Drop-branch in training::

    (1 / N_a) * sum_i beta_i / (1 - rho) * Attn^(i),    beta_i ~ Bernoulli(1 - rho)

and every branch, unscaled, at inference. ``scaling="code"`` reproduces the official code's ``merge_branches``,
which multiplies by a further ``1 / N_a`` (``1 / N_a^2`` in all); it exists to show what that does to proximal
initialisation. The branches are combined by :func:`reprobook.kernels.branch_attention` (one fused call on GPU).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from reprobook._validate import check_choice
from reprobook.kernels.branch_attention import branch_attention
from reprobook.nn import eval_mode
from reprobook.nn.transformer import MultiHeadAttention, Seq2SeqTransformer, TransformerSizes, check_qkv

SCALINGS = ("paper", "code")


def check_branches(num_branches: int, drop_branch: float) -> None:
    """``N_a >= 1`` and ``0 <= rho < 1``, or ``ValueError``."""
    if not isinstance(num_branches, int) or num_branches < 1:
        raise ValueError(f"num_branches (N_a) must be an integer >= 1, got {num_branches!r}")
    if not 0.0 <= drop_branch < 1.0:
        raise ValueError(f"drop_branch (rho) must lie in [0, 1), got {drop_branch!r}; rho = 1 would drop every branch")


class MultiBranchAttention(nn.Module):
    """``N_a`` multi-head attentions averaged with drop-branch; same call as ``MultiHeadAttention``.

    ``forward(query (B, T_q, d), key (B, T_k, d), value (B, T_k, d), key_padding_mask (B, T_k) | None, causal)
    -> (B, T_q, d)``. With ``store_weights = True`` each branch keeps its attention probabilities in
    ``branches[i].last_weights`` (computed a second time, only for plots).
    """

    def __init__(
        self, d_model: int, num_heads: int, num_branches: int, drop_branch: float = 0.0, scaling: str = "paper"
    ) -> None:
        super().__init__()
        check_branches(num_branches, drop_branch)
        self.scaling = check_choice("scaling", scaling, SCALINGS)
        self.d_model, self.num_branches, self.drop_branch = d_model, num_branches, drop_branch
        self.branches = nn.ModuleList(MultiHeadAttention(d_model, num_heads) for _ in range(num_branches))
        self.branch_list: list[MultiHeadAttention] = [cast(MultiHeadAttention, b) for b in self.branches]  # typed view
        self.store_weights = False
        self.last_gates: torch.Tensor | None = None

    def gates(self) -> torch.Tensor:
        """``c_i``: ``1/N_a`` at inference; ``beta_i / (N_a (1 - rho))`` in training.

        With code scaling, divided by ``N_a`` once more."""
        n = self.num_branches
        weight = self.branch_list[0].out_proj.weight
        scale = 1.0 / n if self.scaling == "paper" else 1.0 / n**2
        gates = torch.full((n,), scale, dtype=weight.dtype, device=weight.device)
        if self.training and self.drop_branch > 0:
            keep = torch.bernoulli(torch.full_like(gates, 1.0 - self.drop_branch))
            gates = gates * keep / (1.0 - self.drop_branch)
        return gates

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        check_qkv(query, key, value, self.d_model)
        gates = self.gates()
        self.last_gates = gates.detach()
        project = lambda x, name: torch.stack([b.split_heads(getattr(b, name)(x)) for b in self.branch_list], dim=1)  # noqa: E731
        q, k, v = project(query, "q_proj"), project(key, "k_proj"), project(value, "v_proj")  # (B, N_a, M, T, d_k)
        out_weight = torch.stack([b.out_proj.weight for b in self.branch_list])  # (N_a, d, d)
        out_bias = torch.stack([b.out_proj.bias for b in self.branch_list])  # (N_a, d)
        out = branch_attention(q, k, v, out_weight, gates, key_padding_mask, causal=causal)
        if self.store_weights:
            for branch in self.branch_list:
                branch.store_weights = True
                branch.heads(query, key, value, key_padding_mask, causal)
        return out + gates @ out_bias


def mat_transformer(
    sizes: TransformerSizes, num_branches: int, drop_branch: float = 0.0, scaling: str = "paper"
) -> Seq2SeqTransformer:
    """A :class:`Seq2SeqTransformer` whose every attention (encoder self, decoder self, encoder-decoder) is a
    :class:`MultiBranchAttention` with ``N_a = num_branches`` and ``rho = drop_branch``."""
    check_branches(num_branches, drop_branch)
    return Seq2SeqTransformer(
        sizes,
        attention=lambda: MultiBranchAttention(sizes.d_model, sizes.num_heads, num_branches, drop_branch, scaling),
    )


def proximal_init(pretrained: Seq2SeqTransformer, mat: Seq2SeqTransformer) -> Seq2SeqTransformer:
    """Proximal initialisation: copy ``pretrained`` (a Transformer with ``N_a = 1``) into ``mat`` in place.

    Every attention module is cloned into all of ``mat``'s branches; every other parameter (embeddings, FFN,
    LayerNorm) is copied unchanged, so the two models must have the same ``d``, ``d_h`` and layers. With the
    paper's ``1/N_a`` averaging the result computes exactly the pretrained function; reset the optimiser after.
    """
    state: dict[str, torch.Tensor] = {}
    attention = {name for name, m in pretrained.named_modules() if isinstance(m, MultiHeadAttention)}
    target = dict(mat.named_modules())
    for key, value in pretrained.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        prefix, _, proj = owner.rpartition(".")
        if prefix in attention:
            branches = target.get(prefix)
            if not isinstance(branches, MultiBranchAttention):
                raise ValueError(f"mat has no MultiBranchAttention at {prefix!r}; is it built by mat_transformer?")
            for i in range(branches.num_branches):
                state[f"{prefix}.branches.{i}.{proj}.{leaf}"] = value.clone()
        else:
            state[key] = value.clone()
    try:
        mat.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"pretrained and mat differ in more than their attention branches: {error}") from error
    return mat


def attention_maps(model: Seq2SeqTransformer, src: torch.Tensor, tgt_in: torch.Tensor) -> dict[str, torch.Tensor]:
    """Attention probabilities of every branch for one forward pass in eval mode.

    Returns ``{"encoder.0.self_attn": (N_a, B, M, T_q, T_k), ...}`` (``N_a = 1`` for a plain Transformer).
    """
    modules = {n: m for n, m in model.named_modules() if isinstance(m, (MultiBranchAttention, MultiHeadAttention))}
    modules = {n: m for n, m in modules.items() if ".branches." not in n}
    for m in modules.values():
        m.store_weights = True
    with eval_mode(model), torch.no_grad():
        model(src, tgt_in)
    maps = {}
    for name, m in modules.items():
        branches = m.branch_list if isinstance(m, MultiBranchAttention) else [m]
        maps[name] = torch.stack([b.last_weights for b in branches if b.last_weights is not None])
        m.store_weights = False
        for b in branches:
            b.store_weights, b.last_weights = False, None
    return maps
