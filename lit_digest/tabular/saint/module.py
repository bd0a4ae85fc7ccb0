"""SAINT, the supervised (and fine-tuning) system: SAINT's network with a prediction head on the CLS token."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from lit_digest.core.checkpoints import load_encoder_weights
from lit_digest.core.optim import Optim
from lit_digest.tabular.data import TableBatch, TableSchema
from lit_digest.tabular.saint.layers import VARIANTS, SAINTNet, Variant, official_sizes, two_layer_mlp
from lit_digest.tabular.system import TabularSystem

__all__ = ["SAINT", "EvalRows", "resolve_sizes", "build_net"]

EvalRows = Literal["context", "batch", "self"]
_SIZE_KEYS = ("dim", "depth", "heads", "attn_dropout", "ff_dropout")


def resolve_sizes(hparams: Any, num_features: int) -> dict[str, Any]:
    """The network sizes: each one given in ``hparams``, or else the official value for the variant and the
    table (``official_sizes``)."""
    official = official_sizes(hparams["variant"], num_features)
    sizes = {k: official[k] if hparams.get(k) is None else hparams[k] for k in _SIZE_KEYS}
    return {**sizes, "dim": int(sizes["dim"]), "depth": int(sizes["depth"]), "heads": int(sizes["heads"])}


def build_net(hparams: Any, schema: TableSchema) -> tuple[SAINTNet, dict[str, Any]]:
    sizes = resolve_sizes(hparams, len(schema.categorical) + len(schema.continuous))
    net = SAINTNet(list(schema.cardinalities), len(schema.continuous), sizes["dim"], sizes["depth"], sizes["heads"],
                   hparams["variant"], hparams["dim_head"], hparams["row_dim_head"], sizes["attn_dropout"],
                   sizes["ff_dropout"], hparams["cont_hidden"])
    return net, sizes


class SAINT(TabularSystem):
    """SAINT (Somepalli et al., arXiv 2106.01342): each row's features embedded (Sec. 3.1), stages of column
    self-attention and intersample attention (Sec. 3), and ``Linear -> ReLU -> Linear`` (hidden 1000, the
    official ``mlpfory``) on the CLS token's embedding. Variants: ``saint`` (both attentions), ``saint_s``
    (column attention only) and ``saint_i`` (intersample attention only).

    Sizes left at ``None`` take the official code's value for the variant and the table
    (``lit_digest.tabular.saint.official_sizes``; ``train.py``): dim 32, depth 6, 8 heads, dropout 0.1 for
    SAINT-s; depth 1, 4 heads, dropout 0.8 with row attention; dim 4 above 100 features.

    Rows at evaluation (``eval_rows``). With intersample attention a row's output depends on the other rows it
    attends to. Training always attends within the shuffled training batch (as the paper and official code).
    Validation, test and predict attend to:

    * ``context`` (default): a fixed set of ``context_size`` training rows drawn with ``context_seed`` when
      training starts and kept in the checkpoint; each row attends to them and to itself, the context rows only
      to each other. A row's prediction is then the same in any batch, of any size, in any order;
    * ``batch``: the other rows of its evaluation batch, as the official code evaluates (the DataModule's
      validation and test loaders keep the table's order and a fixed batch size, so a run is repeatable, but a
      row's prediction changes with the rows beside it);
    * ``self``: itself only (intersample attention over a batch of one): batch-independent, no training rows
      needed, the fallback when no context can be kept.

    SAINT-s has no intersample attention: its predictions never depend on the batch.

    Args:
        variant: ``saint``, ``saint_s`` or ``saint_i`` (official ``--attentiontype`` colrow / col / row).
        dim, depth, heads, attn_dropout, ff_dropout: ``None`` for the official values (above).
        dim_head, row_dim_head: width per head of column (16) and intersample (64) attention (official).
        cont_hidden: hidden width of each continuous column's embedding MLP (official 100).
        head_hidden: hidden width of the prediction head (official 1000).
        eval_rows, context_size, context_seed: the rows attended to at evaluation (above); 255 context rows:
            a batch of 256 with the row itself, the official batch size.
        pretrained: a ``SAINTPretrain`` checkpoint whose embedding and encoder weights start fine-tuning
            (read when training starts; the sizes and the table must match).
        schema: the table's ``TableSchema.as_dict()``; ``None`` takes the DataModule's when training starts
            (and stores it in the hyperparameters, so ``SAINT.load_from_checkpoint`` rebuilds the network).
        optim: AdamW, lr 1e-4, constant (official ``train.py``: ``optim.AdamW(lr=0.0001)``, torch's weight
            decay 0.01, no schedule for AdamW; 100 epochs, batch 256).
    """

    def __init__(
        self,
        variant: Variant = "saint",
        dim: int | None = None,
        depth: int | None = None,
        heads: int | None = None,
        attn_dropout: float | None = None,
        ff_dropout: float | None = None,
        dim_head: int = 16,
        row_dim_head: int = 64,
        cont_hidden: int = 100,
        head_hidden: int = 1000,
        eval_rows: EvalRows = "context",
        context_size: int = 255,
        context_seed: int = 0,
        pretrained: str | None = None,
        schema: dict | None = None,
        optim: Optim = Optim(name="adamw", lr=1e-4, weight_decay=0.01, schedule="constant"),
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"model.init_args.variant must be one of {list(VARIANTS)}, got {variant!r}")
        if eval_rows not in ("context", "batch", "self"):
            raise ValueError(f"model.init_args.eval_rows must be 'context', 'batch' or 'self', got {eval_rows!r}")
        if context_size < 1:
            raise ValueError(f"model.init_args.context_size must be >= 1, got {context_size}")
        self.save_hyperparameters()
        self.optim = optim
        self.net: SAINTNet | None = None
        if schema is not None:
            self.build(TableSchema.from_dict(schema))

    def build(self, schema: TableSchema) -> None:
        """The network, head, metrics and context buffers for ``schema`` (explicit sizes from here on)."""
        self.net, self.sizes = build_net(self.hparams, schema)
        self.head = two_layer_mlp(self.sizes["dim"], self.hparams.head_hidden, schema.num_outputs)
        k, n = self.hparams.context_size, len(schema.continuous)
        self.register_buffer("context_cat", torch.zeros(k, len(schema.categorical), dtype=torch.long))
        self.register_buffer("context_cont", torch.zeros(k, n))
        self.register_buffer("context_mask", torch.ones(k, n))
        self.register_buffer("context_rows", torch.zeros((), dtype=torch.long))  # 0: no context kept yet
        super().build(schema)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit":
            if self.hparams.pretrained:
                load_encoder_weights(self.net, self.hparams.pretrained, prefix="net.")
            if self.net.encoder.rows and self.hparams.eval_rows == "context":
                self.set_context(self._training_rows())

    def _training_rows(self) -> TableBatch:
        data = self.trainer.datamodule
        rows = getattr(data, "splits", {}).get("train")
        if rows is None:  # another DataModule: its training batches, in loader order
            parts = []
            for batch in data.train_dataloader():
                parts.append(TableBatch(*batch))
                if sum(len(p.y) for p in parts) >= self.hparams.context_size:
                    break
            rows = TableBatch(*(torch.cat(t) for t in zip(*parts)))
        return rows

    @torch.no_grad()
    def set_context(self, rows: TableBatch) -> None:
        """Keep ``context_size`` of ``rows`` (drawn with ``context_seed``) as the evaluation context."""
        n = len(rows.x_cont)
        pick = torch.randperm(n, generator=torch.Generator().manual_seed(self.hparams.context_seed))
        pick = pick[: self.hparams.context_size]
        self.context_rows.fill_(len(pick))
        for buffer, values in ((self.context_cat, rows.x_cat), (self.context_cont, rows.x_cont),
                               (self.context_mask, rows.cont_mask)):
            buffer[: len(pick)] = values[pick].to(buffer.device, buffer.dtype)

    def _context(self, eval_rows: str) -> tuple[Tensor, Tensor, Tensor] | None:
        if eval_rows == "batch":
            return None
        k = int(self.context_rows) if eval_rows == "context" else 0
        if eval_rows == "context" and k == 0 and self.net.encoder.rows:
            raise RuntimeError("SAINT has no evaluation context yet: fit it first, call set_context(training rows), or "
                               "set model.init_args.eval_rows to 'batch' or 'self'.")
        return self.context_cat[:k], self.context_cont[:k], self.context_mask[:k]

    # -- inference -----------------------------------------------------------------------------------------
    def forward(self, x_cat: Tensor, x_cont: Tensor, cont_mask: Tensor, eval_rows: EvalRows | None = None) -> Tensor:
        """Logits ``(B, classes)`` or the standardised regression output ``(B, 1)``. In training mode the rows
        of the batch attend to each other; in eval mode, as ``eval_rows`` (default: the module's)."""
        self._require_built()
        rows = "batch" if self.training else (eval_rows or self.hparams.eval_rows)
        reps = self.net(x_cat, x_cont, cont_mask, self._context(rows))  # (B, T, d)
        return self.head(reps[:, 0])  # the CLS token
