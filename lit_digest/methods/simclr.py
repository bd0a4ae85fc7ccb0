"""SimCLR: a Simple Framework for Contrastive Learning of Visual Representations
(Chen et al., arXiv 2002.05709)."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule
from torch import nn

from lit_digest.losses.contrastive import nt_xent_loss
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

__all__ = ["SimCLR"]


class SimCLR(LightningModule):
    """Encoder + projector trained so that two views of an image are closer (cosine, over a
    temperature) than any other image of the global batch: NT-Xent with ``2N - 2`` negatives per
    anchor, gathered from every DDP rank (``lit_digest.losses.contrastive.nt_xent_loss``).

    Training batches are ``(views, labels)`` with ``V >= 2`` views (``lit_digest.transforms.SimCLRViews``;
    labels only feed the online probe); evaluation batches ``(images, labels)``. ``forward``
    returns encoder features, and ``self.backbone`` is the encoder to keep after training.

    Defaults are solo-learn's CIFAR ResNet-18 run (``scripts/pretrain/cifar/simclr.yaml``,
    90.74% CIFAR-10 / 65.78% CIFAR-100 online linear accuracy after 1000 epochs): projector
    ``Linear(D, 2048) -> BN -> ReLU -> Linear(2048, 256)`` (the paper's 2-layer MLP head,
    section 2.1), temperature 0.2 (the paper's own CIFAR-10 runs, appendix B.9, tune it with larger
    batches), LARS lr 0.4 at batch 256 (scaled linearly, appendix B.1) with eta 0.02 and LR
    clipping, weight decay 1e-4, 10 warmup epochs then cosine decay; the online probe uses
    lr 0.1.

    Args:
        backbone: the encoder, any ``nn.Module`` mapping images to ``(B, D)``.
        num_classes: classes of the online linear probe.
        feature_dim: ``D``, if the backbone has no ``num_features`` attribute.
        proj_hidden_dim, proj_dim: projector sizes.
        temperature: NT-Xent temperature ``tau``.
        optimizer: ``"lars"``, ``"sgd"`` or ``"adamw"``.
        lr: base learning rate (at a global batch of 256 if ``scale_lr_by_batch``).
        weight_decay, momentum, lars_eta, lars_clip_lr: optimiser settings; biases and
            normalisation parameters get no weight decay and no LARS adaptation.
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
        optimizer: OptimizerName = "lars",
        lr: float = 0.4,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        lars_eta: float = 0.02,
        lars_clip_lr: bool = True,
        warmup_epochs: float = 10,
        scale_lr_by_batch: bool = True,
        probe_lr: float = 0.1,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"{type(self).__name__} needs temperature > 0, got {temperature}")
        self.save_hyperparameters()
        dim = feature_dim_of(backbone, feature_dim)
        self.backbone = backbone
        self.projector = MLP(dim, proj_hidden_dim, proj_dim)
        self.probe = OnlineProbe(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, D)`` of normalised images ``(B, C, H, W)``."""
        return self.backbone(x)

    min_views = 2

    def contrastive_loss(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """NT-Xent of the projections ``z`` (B, V, P); labels are not used."""
        return nt_xent_loss(z, self.hparams.temperature)

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        views, labels = batch
        if len(views) < self.min_views:
            raise ValueError(f"{type(self).__name__} needs at least {self.min_views} views per image, got "
                             f"{len(views)}: use SimCLRViews(n_views=...)")
        feats = [self.backbone(v) for v in views]  # V x (B, D), views apart: BatchNorm per view
        z = torch.stack([self.projector(f) for f in feats], dim=1)  # (B, V, P)
        loss = self.contrastive_loss(z, labels)
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
