"""Small parts every representation method composes (not a base class)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics.classification import MulticlassAccuracy

from lit_digest.losses import masked_cross_entropy
from lit_digest.optim import OptimizerName, build_optimizer, scaled_lr, split_decay_groups, warmup_cosine

__all__ = ["OnlineProbe", "global_batch_size", "configure_warmup_cosine", "check_num_classes"]


class OnlineProbe(nn.Module):
    """A linear classifier trained on *detached* encoder features next to any method.

    It never sends gradients to the encoder (``features.detach()``), so it measures the
    representation without shaping it (the "online linear evaluation" of solo-learn).
    Unlabeled samples (label -1) are ignored.
    """

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(feature_dim, num_classes)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=-1)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features.detach())  # (B, C)

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self(features)
        self.train_acc.update(logits, labels)
        return masked_cross_entropy(logits, labels)


def check_num_classes(module: LightningModule, num_classes: int) -> None:
    """Fail early when the model's class count disagrees with the data's."""
    dm = module.trainer.datamodule if module._trainer is not None else None
    data_classes = getattr(dm, "num_classes", None)
    if isinstance(data_classes, int) and data_classes != num_classes:
        raise ValueError(
            f"{type(module).__name__} was built with num_classes={num_classes} but "
            f"{type(dm).__name__} has {data_classes} classes: set model.init_args.num_classes: {data_classes}."
        )


def global_batch_size(trainer: Trainer) -> int:
    """Per-device batch x devices x nodes x gradient accumulation."""
    dm = trainer.datamodule
    batch = getattr(dm, "batch_size", None)
    if not isinstance(batch, int):
        raise ValueError(
            "Scaling the learning rate by the batch size needs a DataModule with an int `batch_size`; "
            "use one, or set model.init_args.scale_lr_by_batch: false."
        )
    return batch * trainer.world_size * trainer.accumulate_grad_batches


def configure_warmup_cosine(
    module: LightningModule,
    groups: list[dict],
    optimizer: OptimizerName,
    lr: float,
    weight_decay: float,
    momentum: float,
    lars_eta: float,
    lars_clip_lr: bool,
    warmup_epochs: float,
    scale_lr_by_batch: bool,
) -> dict[str, Any]:
    """The optimiser of a config plus a per-step linear-warmup + cosine schedule.

    ``lr`` is the base rate at batch 256 when ``scale_lr_by_batch`` (BYOL appendix C,
    SimCLR appendix B.1); groups may carry their own ``lr`` (e.g. the probe's), which the
    schedule scales by the same factor.
    """
    trainer = module.trainer
    if scale_lr_by_batch:
        factor = scaled_lr(1.0, global_batch_size(trainer))
        lr *= factor
        groups = [{**g, "lr": g["lr"] * factor} if "lr" in g else g for g in groups]
    opt = build_optimizer(optimizer, groups, lr=lr, weight_decay=weight_decay, momentum=momentum,
                          eta=lars_eta, clip_lr=lars_clip_lr)
    total = int(trainer.estimated_stepping_batches)
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
    warmup = int(round(warmup_epochs * total / epochs))

    def factor_at(step: int) -> float:
        return warmup_cosine(step, total, warmup, base_lr=1.0)

    return {"optimizer": opt, "lr_scheduler": {"scheduler": LambdaLR(opt, factor_at), "interval": "step"}}


def probe_group(probe: OnlineProbe, lr: float) -> dict:
    """The probe's parameter group: its own lr, no weight decay, no LARS adaptation
    (solo-learn: ``classifier_lr`` 0.1)."""
    return {"params": list(probe.parameters()), "lr": lr, "weight_decay": 0.0, "lars_exclude": True}


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


def encoder_predict_step(module: LightningModule, batch) -> torch.Tensor:
    """Encoder features ``(B, D)`` of a batch ``(images, labels)`` or of bare images."""
    x = batch[0] if isinstance(batch, (list, tuple)) else batch
    return module.backbone(x)


__all__ += ["probe_group", "split_decay_groups", "probe_validation_step", "probe_test_step", "encoder_predict_step"]
