"""Supervised Contrastive Learning (Khosla et al., arXiv 2004.11362)."""

from __future__ import annotations

import torch
from torch import nn

from lit_digest.losses.contrastive import supcon_loss
from lit_digest.methods.simclr import SimCLR
from lit_digest.optim import OptimizerName

__all__ = ["SupCon"]


class SupCon(SimCLR):
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
        super().__init__(
            backbone, num_classes, feature_dim, proj_hidden_dim, proj_dim, temperature, optimizer, lr,
            weight_decay, momentum, lars_eta, lars_clip_lr, warmup_epochs, scale_lr_by_batch, probe_lr,
        )

    min_views = 1  # same-class samples are positives even with a single view

    def contrastive_loss(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """SupCon L_out of the projections ``z`` (B, V, P) with ``labels`` (B,)."""
        return supcon_loss(z, labels, self.hparams.temperature)
