"""BYOL: Bootstrap Your Own Latent (Grill et al., arXiv 2006.07733)."""

from __future__ import annotations

import math

import torch
from torch import nn

from lit_digest.core.ema import copy_frozen, cosine_tau, update_ema
from lit_digest.core.layers import MLP, feature_dim_of
from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim, split_decay_groups
from lit_digest.ssl.backbones import default_encoder
from lit_digest.ssl.losses import symmetric_byol_loss
from lit_digest.ssl.probe import (
    OnlineProbe,
    check_num_classes,
    encoder_predict_step,
    probe_groups,
    probe_test_step,
    probe_validation_step,
)

__all__ = ["BYOL"]


class BYOL(LightningModule):
    """An online network (encoder, projector, predictor) regresses the projection of a
    slowly moving target network (encoder, projector; an EMA of the online weights) of
    another view of the same image. No negatives.

    Training batches are ``(views, labels)`` with two views (``lit_digest.ssl.BYOLViews``);
    evaluation batches ``(images, labels)``. ``forward`` returns encoder features, and
    ``self.backbone`` is the encoder to keep after training.

    Defaults are solo-learn's CIFAR ResNet-18 run (``scripts/pretrain/cifar/byol.yaml``,
    92.58% CIFAR-10 online linear accuracy after 1000 epochs): projector and predictor 4096 ->
    256 (paper section 3.3), tau 0.99 -> 1.0 on a cosine schedule (paper section 3.2; 0.996 on
    ImageNet), LARS lr 1.0 at batch 256 (scaled linearly, paper appendix C uses 0.2 x batch/256
    on ImageNet), weight decay 1e-5 (1.5e-6 on ImageNet), eta 0.02 with LR clipping,
    10 warmup epochs from 3e-5 then cosine decay to 0 (solo-learn's ``warmup_cosine``); the online probe
    uses lr 0.1 in the same LARS optimiser, its weight adapted and its bias not, as solo-learn's classifier.

    Args:
        backbone: the encoder, any ``nn.Module`` mapping images to ``(B, D)``; None: ``SmallConvNet(width=16)``,
            3 channels (``lit_digest.ssl.backbones.default_encoder``: the paper's ResNet-18 is too slow for a CPU
            default).
        num_classes: classes of the online linear probe.
        feature_dim: ``D``, if the backbone has no ``num_features`` attribute.
        proj_hidden_dim, proj_dim: projector sizes.
        pred_hidden_dim: predictor hidden size (the predictor maps ``proj_dim`` to ``proj_dim``).
        base_tau, final_tau: the target EMA decay at the first and last step.
        optim: optimiser and schedule (``lit_digest.core.optim.Optim``); ``scale_lr_by_batch``
            scales ``probe_lr`` too.
        probe_lr: learning rate of the online linear probe.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        num_classes: int = 10,
        feature_dim: int | None = None,
        proj_hidden_dim: int = 4096,
        proj_dim: int = 256,
        pred_hidden_dim: int = 4096,
        base_tau: float = 0.99,
        final_tau: float = 1.0,
        optim: Optim = Optim(name="lars", lr=1.0, weight_decay=1e-5, lars_eta=0.02, lars_clip_lr=True,
                             scale_lr_by_batch=True, warmup_epochs=10, warmup_start_lr=3e-5),
        probe_lr: float = 0.1,
    ) -> None:
        super().__init__()
        if not 0.0 <= base_tau <= final_tau <= 1.0:
            raise ValueError(f"BYOL needs 0 <= base_tau <= final_tau <= 1, got {base_tau}, {final_tau}")
        # The backbone stays in the hyperparameters so that load_from_checkpoint rebuilds it: as its
        # class_path config when built by the CLI, else as the pickled module.
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim  # the typed block (the CLI keeps a plain dict in hparams)
        backbone = default_encoder(backbone)
        dim = feature_dim_of(backbone, feature_dim)
        self.backbone = backbone
        self.projector = MLP(dim, proj_hidden_dim, proj_dim)
        self.predictor = MLP(proj_dim, pred_hidden_dim, proj_dim)
        self.target_backbone = copy_frozen(backbone)
        self.target_projector = copy_frozen(self.projector)
        self.probe = OnlineProbe(dim, num_classes)
        self._ema_step = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, D)`` of normalised images ``(B, C, H, W)``."""
        return self.backbone(x)

    @property
    def tau(self) -> float:
        """The target's decay at this step. A run bounded only by time has no last step for the cosine: tau
        then stays at ``base_tau`` (as the learning rate stays at its peak, ``lit_digest.core.optim.Optim``)."""
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 1
        if math.isinf(total):
            return self.hparams.base_tau
        return cosine_tau(self._ema_step, int(total), self.hparams.base_tau, self.hparams.final_tau)

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        views, labels = batch
        if len(views) != 2:
            raise ValueError(f"BYOL trains on 2 views per image, got {len(views)}: use BYOLViews")
        feats = [self.backbone(v) for v in views]  # 2 x (B, D), views apart: BatchNorm per view
        preds = [self.predictor(self.projector(f)) for f in feats]  # 2 x (B, P)
        with torch.no_grad():
            targets = [self.target_projector(self.target_backbone(v)) for v in views]  # 2 x (B, P)
        loss = symmetric_byol_loss(preds[0], preds[1], targets[0], targets[1])
        probe_loss = self.probe.loss(torch.cat(feats), labels.repeat(2))

        self.log("train/loss", loss, prog_bar=True)
        self.log("train/probe_loss", probe_loss)
        self.log("train/probe_acc", self.probe.train_acc, on_step=False, on_epoch=True)
        self.log("train/tau", self.tau)
        return loss + probe_loss

    def on_fit_start(self) -> None:
        check_num_classes(self, self.hparams.num_classes)  # before the sanity check can fail on them

    def on_train_start(self) -> None:
        self._ema_step = self.trainer.global_step  # resumed runs continue the tau schedule

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # One EMA update per optimiser step (gradient accumulation skips the others).
        if self.trainer.global_step > self._ema_step:
            tau = self.tau
            update_ema(self.backbone, self.target_backbone, tau)
            update_ema(self.projector, self.target_projector, tau)
            self._ema_step = self.trainer.global_step

    # -- evaluation -------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return probe_validation_step(self, batch, dataloader_idx)

    def test_step(self, batch, batch_idx: int) -> None:
        probe_test_step(self, batch)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return encoder_predict_step(self, batch)

    def configure_optimizers(self):
        groups = split_decay_groups([self.backbone, self.projector, self.predictor])
        return configure_optim(self, groups + probe_groups(self.probe, self.hparams.probe_lr), self.optim)
