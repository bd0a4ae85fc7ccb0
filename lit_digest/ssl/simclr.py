"""SimCLR: a Simple Framework for Contrastive Learning of Visual Representations
(Chen et al., arXiv 2002.05709)."""

from __future__ import annotations

import torch
from torch import nn

from lit_digest.core.layers import MLP, feature_dim_of
from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim, split_decay_groups
from lit_digest.ssl.backbones import default_encoder
from lit_digest.ssl.losses import nt_xent_loss
from lit_digest.ssl.probe import (
    OnlineProbe,
    check_num_classes,
    encoder_predict_step,
    probe_groups,
    probe_test_step,
    probe_validation_step,
)

__all__ = ["SimCLR"]


class SimCLR(LightningModule):
    """Encoder + projector trained so that two views of an image are closer (cosine, over a
    temperature) than any other image of the global batch: NT-Xent with ``2N - 2`` negatives per
    anchor, gathered from every DDP rank (``lit_digest.ssl.losses.nt_xent_loss``).

    Training batches are ``(views, labels)`` with ``V >= 2`` views (``lit_digest.ssl.SimCLRViews``;
    labels only feed the online probe); evaluation batches ``(images, labels)``. ``forward``
    returns encoder features, and ``self.backbone`` is the encoder to keep after training.

    Defaults are solo-learn's CIFAR ResNet-18 run (``scripts/pretrain/cifar/simclr.yaml``,
    90.74% CIFAR-10 / 65.78% CIFAR-100 online linear accuracy after 1000 epochs at batch 256):
    projector ``Linear(D, 2048) -> ReLU -> Linear(2048, 256)`` without BatchNorm (solo-learn's
    ``SimCLR.projector``; the paper's 2-layer MLP head, section 2.1 and eq. 2; ``proj_batch_norm``
    adds the hidden BatchNorm of the official TF code), temperature 0.2 (solo-learn's choice; the
    paper tunes it per setting, its CIFAR-10 runs in appendix B.9), LARS lr 0.4 at batch 256
    (scaled linearly, appendix B.1) with eta 0.02 and LR clipping, weight decay 1e-4, 10 warmup epochs
    from 3e-5 then cosine decay to 0 (solo-learn's ``warmup_cosine``); the online probe uses lr 0.1 in
    the same LARS optimiser, its weight adapted and its bias not, as solo-learn's classifier.

    Args:
        backbone: the encoder, any ``nn.Module`` mapping images to ``(B, D)``; None: ``SmallConvNet(width=16)``,
            3 channels (``lit_digest.ssl.backbones.default_encoder``: the paper's ResNet-18 is too slow for a CPU
            default).
        num_classes: classes of the online linear probe.
        feature_dim: ``D``, if the backbone has no ``num_features`` attribute.
        proj_hidden_dim, proj_dim: projector sizes.
        proj_batch_norm: a BatchNorm after the projector's hidden layer.
        temperature: NT-Xent temperature ``tau``.
        optim: optimiser and schedule (``lit_digest.core.optim.Optim``); ``scale_lr_by_batch``
            scales ``probe_lr`` too.
        probe_lr: learning rate of the online linear probe.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        num_classes: int = 10,
        feature_dim: int | None = None,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 256,
        proj_batch_norm: bool = False,
        temperature: float = 0.2,
        optim: Optim = Optim(name="lars", lr=0.4, weight_decay=1e-4, lars_eta=0.02, lars_clip_lr=True,
                             scale_lr_by_batch=True, warmup_epochs=10, warmup_start_lr=3e-5),
        probe_lr: float = 0.1,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"{type(self).__name__} needs temperature > 0, got {temperature}")
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim  # the typed block (the CLI keeps a plain dict in hparams)
        backbone = default_encoder(backbone)
        dim = feature_dim_of(backbone, feature_dim)
        self.backbone = backbone
        self.projector = MLP(dim, proj_hidden_dim, proj_dim, batch_norm=proj_batch_norm)
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

    def on_fit_start(self) -> None:
        check_num_classes(self, self.hparams.num_classes)  # before the sanity check can fail on them

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints of lit_digest 0.1 have a projector with a hidden BatchNorm: rebuild it so (runs before
        the weights are loaded and before a resumed run builds its optimiser)."""
        state = checkpoint.get("state_dict", {})
        if "projector.1.running_mean" in state and not self.hparams.proj_batch_norm:
            first = state["projector.0.weight"]  # (hidden, D)
            self.projector = MLP(first.shape[1], first.shape[0], state["projector.3.weight"].shape[0],
                                 batch_norm=True).to(first.device)
            self.hparams.proj_batch_norm = True

    # -- evaluation -------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return probe_validation_step(self, batch, dataloader_idx)

    def test_step(self, batch, batch_idx: int) -> None:
        probe_test_step(self, batch)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return encoder_predict_step(self, batch)

    def configure_optimizers(self):
        groups = split_decay_groups([self.backbone, self.projector])
        return configure_optim(self, groups + probe_groups(self.probe, self.hparams.probe_lr), self.optim)
