"""Supervised Contrastive Learning (Khosla et al., arXiv 2004.11362)."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule
from torch import nn

from lit_digest.losses.contrastive import supcon_loss
from lit_digest.methods.common import (
    OnlineProbe,
    check_num_classes,
    configure_warmup_cosine,
    encoder_predict_step,
    probe_group,
    probe_test_step,
    probe_validation_step,
    split_decay_groups,
)
from lit_digest.nn import MLP, feature_dim_of
from lit_digest.optim import OptimizerName

__all__ = ["SupCon"]


class SupCon(LightningModule):
    """SimCLR's architecture with labels: every sample of the anchor's class in the global
    batch (all views, all DDP ranks) is a positive, the rest are negatives: the paper's
    L_out^sup (eq. 2, section 3.2.1; L_out beat L_in, table 1), any number of views per
    image (``lit_digest.transforms.SimCLRViews(n_views=...)``). Unlabeled samples (label -1)
    are their own class (their positives are their other views).

    Training batches are ``(views, labels)``; evaluation batches ``(images, labels)``.
    ``forward`` returns encoder features, and ``self.backbone`` is the encoder to keep.

    Defaults are solo-learn's CIFAR ResNet-18 run (``scripts/pretrain/cifar/supcon.yaml``,
    93.82% CIFAR-10 / 70.38% CIFAR-100 online linear accuracy after 1000 epochs): projector
    2048 -> 256, temperature 0.2, SGD (momentum 0.9) lr 0.4 at batch 256 (scaled linearly),
    weight decay 1e-5, 10 warmup epochs then cosine decay, SimCLR's symmetric views. The
    paper's CIFAR runs (official code, HobbitLong/SupContrast README) use batch 1024, lr 0.5,
    temperature 0.1 and a 128-d projection.

    Args:
        backbone: the encoder, any ``nn.Module`` mapping images to ``(B, D)``.
        num_classes: classes of the online linear probe (and of the labels).
        feature_dim: ``D``, if the backbone has no ``num_features`` attribute.
        proj_hidden_dim, proj_dim: projector sizes.
        temperature: the loss temperature ``tau``.
        optimizer: ``"sgd"``, ``"lars"`` or ``"adamw"``.
        lr: base learning rate (at a global batch of 256 if ``scale_lr_by_batch``).
        weight_decay, momentum, lars_eta, lars_clip_lr: optimiser settings; biases and
            normalisation parameters get no weight decay (and no LARS adaptation).
        warmup_epochs: linear warmup length, then cosine decay to 0, stepped every iteration.
        scale_lr_by_batch: multiply ``lr`` (and ``probe_lr``) by global batch / 256.
        probe_lr: learning rate of the online linear probe.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 10,
        feature_dim: int | None = None,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 256,
        temperature: float = 0.2,
        optimizer: OptimizerName = "sgd",
        lr: float = 0.4,
        weight_decay: float = 1e-5,
        momentum: float = 0.9,
        lars_eta: float = 0.02,
        lars_clip_lr: bool = True,
        warmup_epochs: float = 10,
        scale_lr_by_batch: bool = True,
        probe_lr: float = 0.1,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"SupCon needs temperature > 0, got {temperature}")
        self.save_hyperparameters()
        dim = feature_dim_of(backbone, feature_dim)
        self.backbone = backbone
        self.projector = MLP(dim, proj_hidden_dim, proj_dim)
        self.probe = OnlineProbe(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, D)`` of normalised images ``(B, C, H, W)``."""
        return self.backbone(x)

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        views, labels = batch
        feats = [self.backbone(v) for v in views]  # V x (B, D), views apart: BatchNorm per view
        z = torch.stack([self.projector(f) for f in feats], dim=1)  # (B, V, P)
        loss = supcon_loss(z, labels, self.hparams.temperature)
        probe_loss = self.probe.loss(torch.cat(feats), labels.repeat(len(views)))

        self.log("train/loss", loss, prog_bar=True)
        self.log("train/probe_loss", probe_loss)
        self.log("train/probe_acc", self.probe.train_acc, on_step=False, on_epoch=True)
        return loss + probe_loss

    def on_train_start(self) -> None:
        check_num_classes(self, self.hparams.num_classes)

    # -- evaluation -------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return probe_validation_step(self, batch, dataloader_idx)

    def test_step(self, batch, batch_idx: int) -> None:
        probe_test_step(self, batch)

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return encoder_predict_step(self, batch)

    def configure_optimizers(self):
        h = self.hparams
        groups = split_decay_groups([self.backbone, self.projector])
        groups.append(probe_group(self.probe, h.probe_lr))
        return configure_warmup_cosine(
            self, groups, h.optimizer, h.lr, h.weight_decay, h.momentum, h.lars_eta, h.lars_clip_lr,
            h.warmup_epochs, h.scale_lr_by_batch,
        )
