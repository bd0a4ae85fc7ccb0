"""Small parts every representation method composes (not a base class): the online linear probe,
per-stage accuracies, the evaluation steps that feed the kNN monitor, and the steps of a classifier on a frozen
encoder (``LinearEval``, AET's ``BlockClassifier``)."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lit_digest.core.lightning import LightningModule
from lit_digest.core.optim import split_decay_groups
from lit_digest.ssl.losses import masked_cross_entropy

__all__ = ["OnlineProbe", "accuracy_metrics", "check_num_classes", "probe_groups", "probe_validation_step",
           "probe_test_step", "classifier_training_step", "classifier_validation_step", "classifier_test_step",
           "encoder_predict_step", "class_predictions"]


def accuracy_metrics(num_classes: int) -> tuple[MulticlassAccuracy, MulticlassAccuracy, MulticlassAccuracy]:
    """Top-1 accuracy of one classifier for training (label -1, unlabeled, ignored), validation, test."""
    return (MulticlassAccuracy(num_classes, average="micro", ignore_index=-1),
            MulticlassAccuracy(num_classes, average="micro"), MulticlassAccuracy(num_classes, average="micro"))


class OnlineProbe(nn.Module):
    """A linear classifier trained on *detached* encoder features next to any method.

    It never sends gradients to the encoder (``features.detach()``), so it measures the
    representation without shaping it (the "online linear evaluation" of solo-learn).
    Unlabeled samples (label -1) are ignored.
    """

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(feature_dim, num_classes)
        self.train_acc, self.val_acc, self.test_acc = accuracy_metrics(num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features.detach())  # (B, C)

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self(features)
        self.train_acc.update(logits, labels)
        return masked_cross_entropy(logits, labels)


def probe_groups(probe: OnlineProbe, lr: float) -> list[dict]:
    """The probe's parameter groups as solo-learn's ``learnable_params`` builds its classifier's: its own
    ``lr`` (``classifier_lr`` 0.1), no weight decay; under LARS its weight is adapted like every other
    weight and its bias is not (``exclude_bias_n_norm``)."""
    return split_decay_groups([probe], lr=lr, weight_decay=0.0)


def check_num_classes(module: LightningModule, num_classes: int | None) -> None:
    """Fail early, naming the fix, when the data do not fit the model: its class count, or the number of
    channels of the images against the encoder's first convolution (grey digits into a colour ResNet)."""
    dm = module.trainer.datamodule if module._trainer is not None else None
    data_classes = getattr(dm, "num_classes", None)
    if num_classes is not None and isinstance(data_classes, int) and data_classes != num_classes:
        raise ValueError(
            f"{type(module).__name__} was built with num_classes={num_classes} but "
            f"{type(dm).__name__} has {data_classes} classes: set model.init_args.num_classes: {data_classes}."
        )
    channels = getattr(dm, "in_channels", None)
    first = next((m for m in module.backbone.modules() if isinstance(m, nn.Conv2d)), None)
    if isinstance(channels, int) and first is not None and first.in_channels != channels:
        raise ValueError(
            f"{type(dm).__name__} gives {channels}-channel images but {type(module.backbone).__name__} expects "
            f"{first.in_channels} channels: set model.init_args.backbone.init_args.in_channels: {channels}."
        )


def probe_validation_step(module: LightningModule, batch, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
    """Encoder features of a validation batch, for the kNN monitor; on the validation split
    (loader 0; loader 1 is the kNN bank) it also scores ``module.probe`` as ``val/probe_acc``."""
    x, labels = batch
    feats = module.backbone(x)
    if dataloader_idx == 0:
        module.probe.val_acc(module.probe(feats), labels)
        module.log("val/probe_acc", module.probe.val_acc, add_dataloader_idx=False, prog_bar=True)
    return {"features": feats}


def probe_test_step(module: LightningModule, batch) -> None:
    """``test/probe_acc`` of ``module.probe`` on encoder features."""
    x, labels = batch
    module.probe.test_acc(module.probe(module.backbone(x)), labels)
    module.log("test/probe_acc", module.probe.test_acc)


def classifier_training_step(module: LightningModule, batch) -> torch.Tensor:
    """Cross-entropy of ``module(x)`` (class logits) on every view of a training batch, logged with the running
    ``module.train_acc``: the step of a classifier trained on a frozen encoder."""
    views, labels = batch
    x = torch.cat(list(views)) if isinstance(views, (list, tuple)) else views  # (V*B, C, H, W)
    targets = labels.repeat(x.shape[0] // labels.shape[0])  # (V*B,)
    logits = module(x)  # (V*B, num_classes)
    loss = masked_cross_entropy(logits, targets)
    module.train_acc(logits, targets)
    module.log("train/loss", loss, prog_bar=True)
    module.log("train/acc", module.train_acc, on_step=False, on_epoch=True)
    return loss


def classifier_validation_step(module: LightningModule, batch, dataloader_idx: int = 0) -> None:
    """``val/loss`` and ``val/acc`` of ``module(x)`` on the validation split (loader 1, the kNN bank, is skipped:
    set ``data.init_args.knn_bank_size: 0`` to drop it)."""
    if dataloader_idx != 0:
        return
    x, labels = batch
    logits = module(x)
    module.val_acc(logits, labels)
    module.log("val/loss", masked_cross_entropy(logits, labels), add_dataloader_idx=False)
    module.log("val/acc", module.val_acc, add_dataloader_idx=False, prog_bar=True)


def classifier_test_step(module: LightningModule, batch) -> None:
    """``test/acc`` of ``module(x)``."""
    x, labels = batch
    module.test_acc(module(x), labels)
    module.log("test/acc", module.test_acc)


def encoder_predict_step(module: LightningModule, batch) -> dict[str, torch.Tensor]:
    """``{"features": (B, D)}`` of the encoder, with the batch's ``labels`` (B,) when it has them: what
    ``predict`` hands the ``PredictionWriter``."""
    x, labels = (batch[0], batch[1]) if isinstance(batch, (list, tuple)) else (batch, None)
    out = {"features": module.backbone(x)}
    if labels is not None:
        out["labels"] = labels
    return out


def class_predictions(logits: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """What a classifier's ``predict`` hands the ``PredictionWriter``: ``probabilities`` (B, K) (softmax of the
    ``logits``), the ``predicted`` class (B,) and the batch's ``labels`` (B,) when it has them."""
    probabilities = logits.float().softmax(dim=1)
    out = {"probabilities": probabilities, "predicted": probabilities.argmax(dim=1)}
    if labels is not None:
        out["labels"] = labels
    return out
