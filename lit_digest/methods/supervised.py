"""A plain supervised cross-entropy baseline, on the same backbones and views as the
contrastive methods (the "SupCrossEntropy" row of SupCon, arXiv 2004.11362, table 2)."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lit_digest.losses import masked_cross_entropy
from lit_digest.methods.common import check_num_classes, configure_warmup_cosine, split_decay_groups
from lit_digest.nn import feature_dim_of
from lit_digest.optim import OptimizerName

__all__ = ["Supervised"]


class Supervised(LightningModule):
    """Encoder + linear classifier trained end to end with cross-entropy on every view.

    It takes the same ``(views, labels)`` batches as SimCLR / SupCon, so the same data config
    (augmentations included) trains it; each view is classified and the loss is averaged over
    views. Unlabeled samples (label -1, STL-10's unlabeled split) add nothing to the loss.
    Evaluation batches are ``(images, labels)``; ``validation_step`` returns the features so
    ``KNNMonitor`` works as for the self-supervised methods, and ``self.backbone`` is the
    encoder to evaluate with ``LinearEval`` / ``KNNEval`` like any other.

    Defaults follow the official SupCon code's cross-entropy run (HobbitLong/SupContrast,
    ``main_ce.py`` and README: SGD momentum 0.9, lr 0.8 at batch 1024 -> 0.2 at batch 256
    with linear scaling, weight decay 1e-4, cosine schedule, 10 warmup epochs for large batches).

    Args:
        backbone: the encoder, any ``nn.Module`` mapping images to ``(B, D)``.
        num_classes: classifier outputs.
        feature_dim: ``D``, if the backbone has no ``num_features`` attribute.
        optimizer: ``"sgd"``, ``"lars"`` or ``"adamw"``.
        lr: base learning rate (at a global batch of 256 if ``scale_lr_by_batch``).
        weight_decay, momentum, lars_eta, lars_clip_lr: optimiser settings; biases and
            normalisation parameters get no weight decay.
        warmup_epochs: linear warmup length, then cosine decay to 0, stepped every iteration.
        scale_lr_by_batch: multiply ``lr`` by global batch / 256.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 10,
        feature_dim: int | None = None,
        optimizer: OptimizerName = "sgd",
        lr: float = 0.2,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        lars_eta: float = 0.02,
        lars_clip_lr: bool = True,
        warmup_epochs: float = 10,
        scale_lr_by_batch: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        dim = feature_dim_of(backbone, feature_dim)
        self.backbone = backbone
        self.classifier = nn.Linear(dim, num_classes)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=-1)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, D)`` of normalised images ``(B, C, H, W)``."""
        return self.backbone(x)

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        views, labels = batch
        x = torch.cat(list(views))  # (V*B, C, H, W): one BatchNorm batch, as plain supervised training
        logits = self.classifier(self.backbone(x))  # (V*B, num_classes)
        targets = labels.repeat(len(views))  # (V*B,)
        loss = masked_cross_entropy(logits, targets)
        self.train_acc(logits, targets)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def on_train_start(self) -> None:
        check_num_classes(self, self.hparams.num_classes)

    # -- evaluation -------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        x, labels = batch
        feats = self.backbone(x)
        if dataloader_idx == 0:  # the validation split; loader 1 is the kNN bank
            self.val_acc(self.classifier(feats), labels)
            self.log("val/acc", self.val_acc, add_dataloader_idx=False, prog_bar=True)
        return {"features": feats}

    def test_step(self, batch, batch_idx: int) -> None:
        x, labels = batch
        self.test_acc(self.classifier(self.backbone(x)), labels)
        self.log("test/acc", self.test_acc)

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.classifier(self.backbone(x))  # (B, num_classes) logits

    def configure_optimizers(self):
        h = self.hparams
        groups = split_decay_groups([self.backbone, self.classifier])
        return configure_warmup_cosine(
            self, groups, h.optimizer, h.lr, h.weight_decay, h.momentum, h.lars_eta, h.lars_clip_lr,
            h.warmup_epochs, h.scale_lr_by_batch,
        )
