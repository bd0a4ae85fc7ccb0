"""SAINT's self-supervised pre-training (arXiv 2106.01342, Sec. 4): contrastive and denoising losses on views
made by CutMix in input space and mixup in embedding space. Fine-tune with ``SAINT(pretrained=<checkpoint>)``."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_digest.core.lightning import LightningModule
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.tabular.data import TableBatch, TableSchema
from lit_digest.tabular.saint.augment import cutmix_rows, mixup_embeddings
from lit_digest.tabular.saint.layers import VARIANTS, SAINTNet, Variant, two_layer_mlp
from lit_digest.tabular.saint.losses import denoising_losses, info_nce, pretraining_loss
from lit_digest.tabular.saint.module import build_net
from lit_digest.tabular.tasks import check_schema, schema_from_trainer

__all__ = ["SAINTPretrain", "PerColumnMLP"]


class PerColumnMLP(nn.Module):
    """One ``Linear(d, h) -> ReLU -> Linear(h, out)`` per column, batched: ``(B, N, d) -> (B, N, out)``
    (initialised as ``nn.Linear``)."""

    def __init__(self, columns: int, dim: int, hidden: int, out: int) -> None:
        super().__init__()
        b1, b2 = 1.0 / math.sqrt(dim), 1.0 / math.sqrt(hidden)
        self.w1 = nn.Parameter(torch.empty(columns, dim, hidden).uniform_(-b1, b1))
        self.b1 = nn.Parameter(torch.empty(columns, hidden).uniform_(-b1, b1))
        self.w2 = nn.Parameter(torch.empty(columns, hidden, out).uniform_(-b2, b2))
        self.b2 = nn.Parameter(torch.empty(columns, out).uniform_(-b2, b2))

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(torch.einsum("bnd,ndh->bnh", x, self.w1) + self.b1)  # (B, N, h)
        return torch.einsum("bnh,nho->bno", h, self.w2) + self.b2  # (B, N, out)


class SAINTPretrain(LightningModule):
    """Pre-trains SAINT's embedding and encoder on unlabelled rows (serve every training row:
    ``data.init_args.train_rows: all``).

    For a batch of rows x: the clean view's tokens ``E(x)``; the noisy view ``mixup(E(cutmix(x)))``; their
    contextual embeddings ``r, r'`` through the encoder. Then (Sec. 4; official ``pretraining.py``):

    * contrastive: every token of r and r' L2-normalised, each row flattened and projected by its own head
      (``g1``, ``g2``: ``Linear(T d, 6 T d / 5) -> ReLU -> Linear(., T d / 2)``, official ``pt_mlp`` / ``pt_mlp2``,
      ``pt_projhead_style='diff'``), symmetric InfoNCE at temperature 0.7;
    * denoising: from r', each categorical column's clean value by cross-entropy and each continuous column's by
      squared error, each column with its own ``Linear(d, 5 d) -> ReLU -> Linear`` head (official ``sep_MLP``);
    * ``loss = 0.5 InfoNCE + 1 x categorical + 10 x continuous`` (official ``lam0``, ``lam2``, ``lam3``).

    The official code runs the encoder a third time on the noisy view for denoising; here r' serves both terms.

    Args:
        variant, dim, depth, heads, attn_dropout, ff_dropout, dim_head, row_dim_head, cont_hidden: as ``SAINT``
            (the fine-tuned ``SAINT`` must use the same).
        cutmix_prob: probability that a cell is swapped with another row's (official ``--pt_aug_lam 0.1``).
        mixup_alpha: weight of a row's own embeddings in mixup (official ``--mixup_lam 0.3``).
        temperature: InfoNCE temperature (official ``--nce_temp 0.7``).
        contrastive_weight, cat_weight, cont_weight: official ``lam0 = 0.5``, ``lam2 = 1``, ``lam3 = 10``.
        projection: ``different`` heads for the two views (official default) or the ``same`` one.
        schema: as ``SAINT``.
        optim: AdamW, lr 1e-4 (official ``pretraining.py``); the official runs pre-train 50 epochs
            (``--pretrain_epochs``; 100 in ``train_pt.sh``).
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
        cutmix_prob: float = 0.1,
        mixup_alpha: float = 0.3,
        temperature: float = 0.7,
        contrastive_weight: float = 0.5,
        cat_weight: float = 1.0,
        cont_weight: float = 10.0,
        projection: Literal["different", "same"] = "different",
        schema: dict | None = None,
        optim: Optim = Optim(name="adamw", lr=1e-4, weight_decay=0.01, schedule="constant"),
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"model.init_args.variant must be one of {list(VARIANTS)}, got {variant!r}")
        if not 0.0 <= cutmix_prob <= 1.0 or not 0.0 <= mixup_alpha <= 1.0:
            raise ValueError(f"cutmix_prob and mixup_alpha must be in [0, 1], got {cutmix_prob}, {mixup_alpha}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if projection not in ("different", "same"):
            raise ValueError(f"projection must be 'different' or 'same', got {projection!r}")
        self.save_hyperparameters()
        self.optim = optim
        self.net: SAINTNet | None = None
        self.schema: TableSchema | None = None
        if schema is not None:
            self.build(TableSchema.from_dict(schema))

    def build(self, schema: TableSchema) -> None:
        self.schema = schema
        self.net, self.sizes = build_net(self.hparams, schema)
        d, width = self.sizes["dim"], self.net.num_tokens * self.sizes["dim"]
        self.cat_heads = nn.ModuleList(two_layer_mlp(d, 5 * d, k) for k in schema.cardinalities)
        self.cont_heads = PerColumnMLP(len(schema.continuous), d, 5 * d, 1)
        self.projector1 = two_layer_mlp(width, 6 * width // 5, width // 2)
        self.projector2 = self.projector1 if self.hparams.projection == "same" else two_layer_mlp(
            width, 6 * width // 5, width // 2)
        self.hparams["schema"] = schema.as_dict()

    def setup(self, stage: str) -> None:
        if self.net is None:
            self.build(schema_from_trainer(self))
        else:
            check_schema(self.schema, self)

    def forward(self, x_cat: Tensor, x_cont: Tensor, cont_mask: Tensor) -> Tensor:
        """Contextual embeddings ``(B, T, d)`` of the rows (attending to each other)."""
        return self.net(x_cat, x_cont, cont_mask)

    def losses(self, batch: TableBatch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``loss`` and its terms ``contrastive``, ``denoise_cat``, ``denoise_cont`` for one batch."""
        x_cat, x_cont, mask = batch.x_cat, batch.x_cont, batch.cont_mask
        hp, embed = self.hparams, self.net.embedding
        clean = embed(x_cat, x_cont, mask)  # (B, T, d)
        noisy_cat, noisy_cont, noisy_mask, _ = cutmix_rows(x_cat, x_cont, mask, hp.cutmix_prob, generator)
        noisy, _ = mixup_embeddings(embed(noisy_cat, noisy_cont, noisy_mask), hp.mixup_alpha, generator)
        r, r_noisy = self.net.encoder(clean), self.net.encoder(noisy)  # (B, T, d) each
        z1 = self.projector1(F.normalize(r, dim=-1).flatten(1))  # (B, T d / 2)
        z2 = self.projector2(F.normalize(r_noisy, dim=-1).flatten(1))
        contrastive = info_nce(z1, z2, hp.temperature)
        c = len(self.schema.categorical)
        cat_logits = [head(r_noisy[:, 1 + j]) for j, head in enumerate(self.cat_heads)]  # (B, K_j) each
        cont_pred = self.cont_heads(r_noisy[:, 1 + c:]).squeeze(-1)  # (B, N)
        cat, cont = denoising_losses(cat_logits, cont_pred, x_cat, x_cont, mask)
        loss = pretraining_loss(contrastive, cat, cont, hp.contrastive_weight, hp.cat_weight, hp.cont_weight)
        return {"loss": loss, "contrastive": contrastive, "denoise_cat": cat, "denoise_cont": cont}

    def training_step(self, batch: TableBatch, batch_idx: int) -> Tensor:
        batch = TableBatch(*batch)
        terms = self.losses(batch)
        for name, value in terms.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=len(batch.y))
        return terms["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val_generator = torch.Generator().manual_seed(0)  # the same views at every validation

    def validation_step(self, batch: TableBatch, batch_idx: int) -> None:
        batch = TableBatch(*batch)
        generator = getattr(self, "_val_generator", None) or torch.Generator().manual_seed(0)
        for name, value in self.losses(batch, generator).items():
            self.log(f"val/{name}", value, batch_size=len(batch.y))

    @torch.no_grad()
    def predict_step(self, batch: TableBatch, batch_idx: int) -> Tensor:
        """The CLS token's contextual embedding ``(B, d)`` of each row (the rows of a predict batch attend to each
        other, as in pre-training), written to ``embeddings.csv``."""
        batch = TableBatch(*batch)
        return self.net(batch.x_cat, batch.x_cont, batch.cont_mask)[:, 0]

    def configure_callbacks(self) -> list:
        from lit_digest.tabular.predict import TablePredictionWriter

        return [TablePredictionWriter("embeddings")]

    def configure_optimizers(self):
        return configure_optim(self, [{"params": [p for p in self.parameters() if p.requires_grad]}], self.optim)
