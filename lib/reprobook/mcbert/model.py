"""The three pre-training objectives on one encoder: BERT-MLM, ELECTRA and MC-BERT.

Every model has a main encoder ``D`` (token table ``E: (V, d)``, learned positions, post-LN blocks of
:mod:`reprobook.nn.transformer`) and a per-token bias ``b: (V,)``.

* **MLM** (BERT): 15 % of the tokens (the set ``M``) become ``<mask>``; ``L = -1/|M| sum_{t in M} log p_D(x_t)``
  with ``p_D = softmax(LN(GELU(W h_t)) E^T + b)``.
* **ELECTRA**: a small generator ``G`` (width ``d / divider``) does the MLM; one sample per masked token
  corrupts the input; ``D`` says for every token whether it was replaced (binary cross-entropy ``L_RTD``).
* **MC-BERT** (Sec. 3 of the paper; losses as in the official ``criterions/mcbert.py``): the meta controller
  ``G`` samples ``K`` tokens ``s_t[0..K-1]`` at *every* position from its full-vocabulary softmax; the input is
  corrupted with ``s_t[0]`` at the masked positions; the candidates are ``<neither>`` (slot 0), the original
  token if replaced else ``s_t[1]`` (slot 1), and ``s_t[2..K-1]``. ``D`` scores candidate ``c`` with
  ``z_{t,c} = <u_t, E[c]> + b[c]``, ``u_t = LN(GELU(W h_t))``; the label is slot 1 when replaced, else slot 0.

Both small networks share ``D``'s token table through a projection, ``E_G = E P`` (``P: d -> d / divider``), and
``D``'s bias, as ``embed_linear`` and ``lmhead_bias_helper`` do in the official code; their samples are detached,
so ``G`` learns from its MLM loss alone (an adaptive curriculum). Loss normalisation (official):
``L = (sum_M L_MLM + lambda * sum_t L_t * |M| / N) / |M|``, with ``N`` the non-pad tokens and ``lambda = 50``.

A sample equal to the original token counts as not replaced; a candidate list that holds the correct token in
several slots (sampling is with replacement) is scored with the log-sum-exp over all of them
(:func:`reprobook.kernels.candidate_scoring`), so identical logits never fight each other.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reprobook._validate import check_choice, check_float, check_int, describe
from reprobook.kernels.candidate_scoring import candidate_cross_entropy
from reprobook.nn.transformer import EncoderLayer, MultiHeadAttention

OBJECTIVES = ("mlm", "electra", "mcbert")
PAD_ID, BOS_ID, SEP_ID, MASK_ID, NEITHER_ID, UNK_ID = range(6)
NUM_SPECIALS = 6


class Encoder(nn.Module):
    """Learned positions + post-LN Transformer encoder blocks: ``(B, T, d)`` token vectors -> ``(B, T, d)``."""

    def __init__(self, d: int, heads: int, layers: int, ffn: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.max_len, self.dropout = max_len, dropout
        self.positions = nn.Embedding(max_len, d)
        # BERT's initialisation (std 0.02, as the token table): PyTorch's default (std 1) would make positions
        # about 50x larger than the words, and after the layer norm the encoder would barely see the words.
        nn.init.normal_(self.positions.weight, std=0.02)
        self.norm = nn.LayerNorm(d)
        self.blocks = nn.ModuleList(
            EncoderLayer(d, ffn, lambda: MultiHeadAttention(d, heads), dropout) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence of length {x.shape[1]} is longer than the {self.max_len} positions")
        x = self.norm(x + self.positions.weight[: x.shape[1]])
        x = F.dropout(x, self.dropout, self.training)
        for block in self.blocks:
            x = block(x, padding)
        return x


class Transform(nn.Module):
    """``u = LN(GELU(W h))``: the head every token-prediction output starts with (BERT's ``LMHead``)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.linear, self.norm = nn.Linear(d, d), nn.LayerNorm(d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.norm(F.gelu(self.linear(h)))
        return out


def check_ids(ids: torch.Tensor, vocab: int) -> None:
    """``ids`` must be a long ``(B, T)`` tensor of token ids in ``0..vocab-1``."""
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2:
        raise ValueError(f"ids must be a long tensor (B, T), got {describe(ids)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ValueError(f"token id {bad} is unknown: the vocabulary has ids 0..{vocab - 1}")


def mask_tokens(ids: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The masked set ``M``: bool ``(B, T)``, each non-special token with probability ``rate`` (no 80/10/10)."""
    check_float("mask_rate", rate, 0.0, 1.0, open_low=True, open_high=True)
    draw = torch.rand(ids.shape, generator=generator, device=ids.device)
    return (draw < rate) & (ids >= NUM_SPECIALS)


def build_candidates(ids: torch.Tensor, samples: torch.Tensor, masked: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """MC-BERT's corruption and candidates from ``K`` samples per position ``samples (B, T, K)``.

    Returns ``corrupted (B, T)`` (``s[0]`` at masked positions), ``replaced (B, T)`` bool (the sample differs from
    the original), ``candidates (B, T, K)`` (slot 0 ``<neither>``, slot 1 the original if replaced else ``s[1]``,
    then ``s[2:]``) and the label slot ``(B, T)``: 1 if replaced, 0 otherwise, -1 at padding."""
    if samples.ndim != 3 or samples.shape[:2] != ids.shape or samples.shape[2] < 2:
        raise ValueError(f"samples must be (B, T, K >= 2) for ids {tuple(ids.shape)}, got {tuple(samples.shape)}")
    corrupted = torch.where(masked, samples[..., 0], ids)
    replaced = corrupted != ids
    candidates = samples.clone()
    candidates[..., 0] = NEITHER_ID
    candidates[..., 1] = torch.where(replaced, ids, samples[..., 1])
    label = replaced.long().masked_fill(ids == PAD_ID, -1)
    return corrupted, replaced, candidates, label


def official_loss(
    mlm_sum: torch.Tensor, task_sum: torch.Tensor, n_masked: int, n_tokens: int, lam: float
) -> torch.Tensor:
    """``(sum_M L_MLM + lambda * sum_t L_t * |M| / N) / |M|`` (fairseq's ``sample_size`` is ``|M|``)."""
    n_masked = max(n_masked, 1)
    return (mlm_sum + lam * task_sum * n_masked / max(n_tokens, 1)) / n_masked


class Pretrainer(nn.Module):
    """One of :data:`OBJECTIVES` on a main encoder ``D``; ``losses(ids)`` returns the loss and the task metrics.

    ``encode(ids)`` gives ``D``'s hidden states ``(B, T, d)``: what fine-tuning keeps."""

    def __init__(
        self,
        objective: str,
        vocab: int,
        d: int = 64,
        heads: int = 4,
        layers: int = 2,
        ffn: int = 256,
        max_len: int = 18,
        divider: int = 2,
        num_candidates: int = 10,
        lam: float = 50.0,
        mask_rate: float = 0.15,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.objective = check_choice("objective", objective, OBJECTIVES)
        check_int("vocab", vocab, NUM_SPECIALS + 2)
        check_int("num_candidates", num_candidates, 2)
        check_int("divider", divider, 1)
        check_float("mask_rate", mask_rate, 0.0, 1.0, open_low=True, open_high=True)
        check_float("lam", lam, 0.0, open_low=True)
        self.vocab, self.K, self.lam, self.mask_rate = vocab, num_candidates, lam, mask_rate
        self.embed = nn.Embedding(vocab, d)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.body = Encoder(d, heads, layers, ffn, max_len, dropout)
        if objective in ("mlm", "mcbert"):
            self.head = Transform(d)
        else:
            self.rtd = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        if objective != "mlm":
            dc = d // divider
            self.proj = nn.Linear(d, dc, bias=False)  # embed_linear: G's table is E P
            self.small = Encoder(dc, max(1, heads // divider), layers, ffn // divider, max_len, dropout)
            self.small_head = Transform(dc)

    @property
    def max_len(self) -> int:
        return self.body.max_len

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """``D``'s hidden states ``(B, T, d)`` of ``ids (B, T)``."""
        check_ids(ids, self.vocab)
        return self.body(self.embed(ids), ids == PAD_ID)

    def small_states(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator / controller: ``(u (B, T, d_c), table (V, d_c))``; logits are ``u table^T + b``."""
        table = self.proj(self.embed.weight)
        return self.small_head(self.small(F.embedding(ids, table), ids == PAD_ID)), table

    def controller_logits(self, masked_ids: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary logits ``(B, T, V)`` of the generator / controller (for plots and tests)."""
        u, table = self.small_states(masked_ids)
        return u @ table.T + self.bias

    def sample(self, logits: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
        """``k`` draws with replacement per row of ``logits (..., V)``; special tokens are never drawn."""
        logits = logits.detach().float().clone()
        logits[..., :NUM_SPECIALS] = -math.inf
        probs = logits.softmax(-1).reshape(-1, self.vocab)
        draws = torch.multinomial(probs, k, replacement=True, generator=generator)
        return draws.view(*logits.shape[:-1], k)

    def losses(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The objective's loss (``"loss"``) and detached metrics on a batch ``ids (B, T)``.

        ``task_acc``: the discriminative question's accuracy over every non-pad token (``<s>`` and ``<sep>``
        included); ``task_acc_replaced``: over the replaced tokens only; ``original_share``: the share of
        non-pad tokens left original, the accuracy of always answering "original"; ``gen_acc``: the small
        network's MLM accuracy at the masked positions."""
        check_ids(ids, self.vocab)
        masked = mask_tokens(ids, self.mask_rate, generator)
        masked_ids = ids.masked_fill(masked, MASK_ID)
        n_masked, n_tokens = int(masked.sum()), int((ids != PAD_ID).sum())
        if self.objective == "mlm":
            h = self.encode(masked_ids)[masked]
            logits = self.head(h) @ self.embed.weight.T + self.bias
            mlm_sum = F.cross_entropy(logits, ids[masked], reduction="sum")
            acc = (logits.argmax(-1) == ids[masked]).float().mean() if n_masked else torch.tensor(0.0)
            return {"loss": mlm_sum / max(n_masked, 1), "mlm_acc": acc.detach()}
        u, table = self.small_states(masked_ids)
        small_logits = u[masked] @ table.T + self.bias  # the MLM part, with gradients
        mlm_sum = F.cross_entropy(small_logits, ids[masked], reduction="sum")
        gen_acc = (small_logits.argmax(-1) == ids[masked]).float().mean() if n_masked else torch.tensor(0.0)
        token = ids != PAD_ID
        if self.objective == "electra":
            samples = ids.clone()
            samples[masked] = self.sample(small_logits, 1, generator)[:, 0]
            replaced = samples != ids
            logit = self.rtd(self.encode(samples)).squeeze(-1)
            rtd_sum = F.binary_cross_entropy_with_logits(logit[token], replaced[token].float(), reduction="sum")
            right = (logit > 0) == replaced
            return {
                "loss": official_loss(mlm_sum, rtd_sum, n_masked, n_tokens, self.lam),
                "mlm": (mlm_sum / max(n_masked, 1)).detach(),
                "task_acc": right[token].float().mean(),
                "task_acc_replaced": right[replaced].float().mean() if replaced.any() else torch.tensor(0.0),
                "original_share": (~replaced)[token].float().mean(),
                "gen_acc": gen_acc.detach(),
            }
        with torch.no_grad():  # the controller's softmax over the vocabulary at every position
            full = u.detach() @ table.detach().T + self.bias.detach()
        samples = self.sample(full, self.K, generator)
        corrupted, replaced, candidates, label = build_candidates(ids, samples, masked)
        out = self.head(self.encode(corrupted))
        per_token = candidate_cross_entropy(out, self.embed.weight, self.bias, candidates, label)
        mc_sum = per_token.sum()
        with torch.no_grad():
            scores = torch.einsum("btd,btkd->btk", out, self.embed.weight[candidates]) + self.bias[candidates]
            chosen = candidates.gather(-1, scores.argmax(-1, keepdim=True))[..., 0]
            right = chosen == candidates.gather(-1, label.clamp(min=0)[..., None])[..., 0]
        return {
            "loss": official_loss(mlm_sum, mc_sum, n_masked, n_tokens, self.lam),
            "mlm": (mlm_sum / max(n_masked, 1)).detach(),
            "task_acc": right[token].float().mean(),
            "task_acc_replaced": right[replaced].float().mean() if replaced.any() else torch.tensor(0.0),
            "original_share": (~replaced)[token].float().mean(),
            "gen_acc": gen_acc.detach(),
        }


class Classifier(nn.Module):
    """Fine-tuning: ``D``'s table and encoder, a linear head on the first token ``<s>``: ``(B, T) -> (B, C)``."""

    def __init__(self, pretrainer: Pretrainer, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 2)
        import copy

        self.vocab = pretrainer.vocab
        self.embed, self.body = copy.deepcopy(pretrainer.embed), copy.deepcopy(pretrainer.body)
        d = self.embed.embedding_dim
        self.dropout, self.out = dropout, nn.Linear(d, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_ids(ids, self.vocab)
        h = self.body(self.embed(ids), ids == PAD_ID)[:, 0]
        logits: torch.Tensor = self.out(F.dropout(h, self.dropout, self.training))
        return logits
