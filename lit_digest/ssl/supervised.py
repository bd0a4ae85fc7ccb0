"""A plain supervised cross-entropy baseline, on the same backbones and views as the
contrastive methods (the "SupCrossEntropy" row of SupCon, arXiv 2004.11362, table 2)."""

from __future__ import annotations

import torch
from torch import nn

from lit_digest.core.layers import feature_dim_of
from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim, split_decay_groups
from lit_digest.ssl.backbones import default_encoder
from lit_digest.ssl.losses import masked_cross_entropy
from lit_digest.ssl.probe import accuracy_metrics, check_num_classes, class_predictions, encoder_predict_step

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
        backbone: the encoder, any ``nn.Module`` mapping images to ``(B, D)``; None: ``SmallConvNet(width=16)``,
            3 channels (``lit_digest.ssl.backbones.default_encoder``: the paper's ResNet-18 is too slow for a CPU
            default).
        num_classes: classifier outputs.
        feature_dim: ``D``, if the backbone has no ``num_features`` attribute.
        optim: optimiser and schedule (``lit_digest.core.optim.Optim``).
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        num_classes: int = 10,
        feature_dim: int | None = None,
        optim: Optim = Optim(name="sgd", lr=0.2, weight_decay=1e-4, momentum=0.9, scale_lr_by_batch=True,
                             warmup_epochs=10),
    ) -> None:
        super().__init__()
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim  # the typed block (the CLI keeps a plain dict in hparams)
        backbone = default_encoder(backbone)
        dim = feature_dim_of(backbone, feature_dim)
        self.backbone = backbone
        self.classifier = nn.Linear(dim, num_classes)
        self.train_acc, self.val_acc, self.test_acc = accuracy_metrics(num_classes)

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

    def on_fit_start(self) -> None:
        check_num_classes(self, self.hparams.num_classes)  # before the sanity check can fail on them

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

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """Encoder ``features`` (B, D), class ``probabilities`` (B, num_classes), the ``predicted`` class and the
        ``labels`` when known."""
        out = encoder_predict_step(self, batch)
        return {"features": out["features"], **class_predictions(self.classifier(out["features"]), out.get("labels"))}

    def configure_optimizers(self):
        return configure_optim(self, split_decay_groups([self.backbone, self.classifier]), self.optim)
