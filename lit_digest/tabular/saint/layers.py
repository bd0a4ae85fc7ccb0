"""SAINT's network (Somepalli et al., arXiv 2106.01342, Sec. 3): feature embeddings, then stages of column
self-attention and intersample (row) attention. Plain ``nn.Module``s built from explicit sizes.

Shapes: B rows, C categorical and N continuous columns, T = 1 + C + N tokens (the CLS token first), d = ``dim``.

Differences from the official code (``somepago/saint``, ``models/model.py``), each on purpose:

* residual blocks are the usual pre-norm ``x + f(LayerNorm(x))``; the official ``PreNorm(Residual(f))`` adds
  the *normalised* input, ``LayerNorm(x) + f(LayerNorm(x))``;
* ``attn_dropout`` drops attention weights; the official ``Attention`` builds its dropout but never applies it;
* the CLS token is a learned vector, where the official code feeds it as a categorical column with one value
  (the same thing: one learned embedding);
* a categorical column's missing-value token is index 0 of its own table (the official code has a
  ``"MissingValue"`` category and, for masked cells, a per-column mask embedding).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Variant", "VARIANTS", "FeatureEmbedding", "Attention", "FeedForward", "SAINTEncoder", "SAINTNet",
           "official_sizes", "two_layer_mlp"]

Variant = Literal["saint", "saint_s", "saint_i"]
VARIANTS: dict[str, str] = {"saint": "colrow", "saint_s": "col", "saint_i": "row"}  # the official --attentiontype


def official_sizes(variant: Variant, num_features: int) -> dict[str, float]:
    """The official code's sizes for a variant and a table of ``num_features`` feature columns
    (``train.py``): dim 32, depth 6, 8 heads, attention and feed-forward dropout 0.1; with row attention
    (SAINT, SAINT-i) depth 1, at most 4 heads, dropout 0.8 and dim at most 32; above 100 features, dim at
    most 4 (and a batch of at most 64: a data setting, ``data.init_args.batch_size``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    sizes: dict[str, float] = {"dim": 32, "depth": 6, "heads": 8, "attn_dropout": 0.1, "ff_dropout": 0.1}
    if num_features > 100:
        sizes["dim"] = 4
    if variant != "saint_s":
        sizes.update(depth=1, heads=4, attn_dropout=0.8, ff_dropout=0.8)
    return sizes


def two_layer_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """``Linear -> ReLU -> Linear``: the official ``simple_MLP`` behind SAINT's heads."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class FeatureEmbedding(nn.Module):
    """Each feature its own embedding (Sec. 3.1): a table per categorical column, a small MLP per continuous
    column (``1 -> cont_hidden -> d`` with ReLU; the official ``simple_MLP([1, 100, dim])``), a learned
    missing-value embedding per continuous column (used where ``cont_mask`` is 0) and a CLS token first."""

    def __init__(self, cardinalities: list[int], num_continuous: int, dim: int, cont_hidden: int = 100) -> None:
        super().__init__()
        if any(c < 1 for c in cardinalities):
            raise ValueError(f"every categorical column needs >= 1 category, got {cardinalities}")
        self.num_categorical, self.num_continuous, self.dim = len(cardinalities), num_continuous, dim
        offsets = torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0)[: len(cardinalities)]
        self.register_buffer("offsets", offsets, persistent=False)
        self.categories = nn.Embedding(max(sum(cardinalities), 1), dim)  # one table per column, stacked
        self.cls = nn.Parameter(torch.randn(dim))
        # per-column MLPs, batched: weights (N, ...) initialised as nn.Linear would be
        h = cont_hidden
        self.w1 = nn.Parameter(torch.empty(num_continuous, h).uniform_(-1.0, 1.0))  # fan_in 1
        self.b1 = nn.Parameter(torch.empty(num_continuous, h).uniform_(-1.0, 1.0))
        bound = 1.0 / math.sqrt(h)
        self.w2 = nn.Parameter(torch.empty(num_continuous, h, dim).uniform_(-bound, bound))
        self.b2 = nn.Parameter(torch.empty(num_continuous, dim).uniform_(-bound, bound))
        self.missing = nn.Parameter(torch.randn(num_continuous, dim))

    @property
    def num_tokens(self) -> int:
        return 1 + self.num_categorical + self.num_continuous

    def forward(self, x_cat: Tensor, x_cont: Tensor, cont_mask: Tensor) -> Tensor:
        b = x_cont.shape[0]
        cat = self.categories(x_cat + self.offsets)  # (B, C, d)
        hidden = F.relu(x_cont.unsqueeze(-1) * self.w1 + self.b1)  # (B, N, h)
        cont = torch.einsum("bnh,nhd->bnd", hidden, self.w2) + self.b2  # (B, N, d)
        cont = torch.where(cont_mask.unsqueeze(-1) > 0, cont, self.missing)  # missing cells: the column's embedding
        return torch.cat([self.cls.expand(b, 1, -1), cat, cont], dim=1)  # (B, T, d)


class Attention(nn.Module):
    """Multi-head attention with ``heads x dim_head`` inner width (official: 8 x 16 over columns, 64 per head
    over rows).

    ``forward(x)`` attends within the second axis of ``x (S, L, D)``. ``forward_rows(x, context)`` is
    intersample attention for rows ``x (B, D)`` that each see only the ``context (K, D)`` rows and themselves,
    so that no row can change another's output (K = 0: each row sees itself only)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dim_head, self.dropout = heads, dim_head, dropout
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        return tuple(t.unflatten(-1, (self.heads, self.dim_head)) for t in (q, k, v))  # (..., L, h, e)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (t.transpose(-3, -2) for t in self._split(x))  # (S, h, L, e)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (S, h, L, e)
        return self.to_out(out.transpose(-3, -2).flatten(-2))  # (S, L, D)

    def forward_rows(self, x: Tensor, context: Tensor) -> Tensor:
        q, k, v = self._split(x)  # (B, h, e)
        scale = self.dim_head**-0.5
        own = (q * k).sum(-1, keepdim=True) * scale  # (B, h, 1)
        if context.shape[0] == 0:
            return self.to_out(v.flatten(-2))  # softmax over one key: the row's own value
        _, kc, vc = self._split(context)  # (K, h, e)
        scores = torch.cat([torch.einsum("bhe,khe->bhk", q, kc) * scale, own], dim=-1)  # (B, h, K + 1)
        w = scores.softmax(-1)
        if self.training and self.dropout > 0:
            w = F.dropout(w, self.dropout)
        out = torch.einsum("bhk,khe->bhe", w[..., :-1], vc) + w[..., -1:] * v  # (B, h, e)
        return self.to_out(out.flatten(-2))  # (B, D)


class FeedForward(nn.Sequential):
    """``Linear(D, 2 mult D) -> GEGLU -> Dropout -> Linear(mult D, D)``, the official feed-forward (mult 4)."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__(nn.Linear(dim, dim * mult * 2), _GEGLU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim))


class _GEGLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        x, gates = x.chunk(2, dim=-1)
        return x * F.gelu(gates)


class _Block(nn.Module):
    """Pre-norm residual ``x + f(LayerNorm(x))``."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim), fn

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fn(self.norm(x))


class SAINTEncoder(nn.Module):
    """``depth`` stages. SAINT: column self-attention + feed-forward over the T tokens of each row, then
    intersample attention + feed-forward over the rows of the batch, each row flattened to ``T x d``
    (Sec. 3, Fig. 1); SAINT-s: the column half only; SAINT-i: the row half only.

    ``forward(tokens)`` lets the rows of the batch attend to each other. ``forward(tokens, context)`` lets
    each row attend only to the ``context`` rows and itself, and the context rows only to each other: then a
    row's output depends on itself and the context alone, whatever batch it comes in.
    """

    def __init__(self, num_tokens: int, dim: int, depth: int, heads: int, variant: Variant = "saint",
                 dim_head: int = 16, row_dim_head: int = 64, attn_dropout: float = 0.1, ff_dropout: float = 0.1,
                 ff_mult: int = 4) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
        if depth < 1 or heads < 1:
            raise ValueError(f"depth and heads must be >= 1, got {depth}, {heads}")
        self.variant, self.num_tokens, self.dim = variant, num_tokens, dim
        self.columns = variant in ("saint", "saint_s")
        self.rows = variant in ("saint", "saint_i")
        row_width = num_tokens * dim
        self.stages = nn.ModuleList()
        for _ in range(depth):
            stage = nn.ModuleDict()
            if self.columns:
                stage["col_attn"] = _Block(dim, Attention(dim, heads, dim_head, attn_dropout))
                stage["col_ff"] = _Block(dim, FeedForward(dim, ff_mult, ff_dropout))
            if self.rows:
                stage["row_norm"] = nn.LayerNorm(row_width)
                stage["row_attn"] = Attention(row_width, heads, row_dim_head, attn_dropout)
                stage["row_ff"] = _Block(row_width, FeedForward(row_width, ff_mult, ff_dropout))
            self.stages.append(stage)

    def forward(self, tokens: Tensor, context: Tensor | None = None) -> Tensor:
        b, t, d = tokens.shape
        x, ctx = tokens, (context if self.rows else None)  # without row attention, rows never meet
        for stage in self.stages:
            if self.columns:
                x = stage["col_ff"](stage["col_attn"](x))  # (B, T, d)
                if ctx is not None and len(ctx):
                    ctx = stage["col_ff"](stage["col_attn"](ctx))
            if self.rows:
                flat = x.reshape(b, t * d)  # (B, T d): one token per row
                norm, attn = stage["row_norm"], stage["row_attn"]
                if ctx is None:
                    flat = flat + attn(norm(flat).unsqueeze(0)).squeeze(0)  # the rows of the batch attend to each other
                else:
                    cflat = ctx.reshape(len(ctx), t * d)  # (K, T d)
                    flat = flat + attn.forward_rows(norm(flat), norm(cflat))
                    if len(cflat):
                        cflat = cflat + attn(norm(cflat).unsqueeze(0)).squeeze(0)
                        ctx = stage["row_ff"](cflat).reshape(len(ctx), t, d)
                x = stage["row_ff"](flat).reshape(b, t, d)
        return x  # (B, T, d)


class SAINTNet(nn.Module):
    """Embedding + encoder: rows ``(x_cat, x_cont, cont_mask)`` to contextual embeddings ``(B, T, d)``; the
    CLS token's (index 0) feeds the prediction head."""

    def __init__(self, cardinalities: list[int], num_continuous: int, dim: int = 32, depth: int = 6, heads: int = 8,
                 variant: Variant = "saint", dim_head: int = 16, row_dim_head: int = 64, attn_dropout: float = 0.1,
                 ff_dropout: float = 0.1, cont_hidden: int = 100) -> None:
        super().__init__()
        self.embedding = FeatureEmbedding(cardinalities, num_continuous, dim, cont_hidden)
        self.encoder = SAINTEncoder(self.embedding.num_tokens, dim, depth, heads, variant, dim_head, row_dim_head,
                                    attn_dropout, ff_dropout)

    @property
    def num_tokens(self) -> int:
        return self.embedding.num_tokens

    def forward(self, x_cat: Tensor, x_cont: Tensor, cont_mask: Tensor,
                context: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
        tokens = self.embedding(x_cat, x_cont, cont_mask)  # (B, T, d)
        ctx = None if context is None else self.embedding(*context)  # (K, T, d)
        return self.encoder(tokens, ctx)
