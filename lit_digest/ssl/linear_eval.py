"""Linear evaluation of a frozen encoder: the standard protocol every representation method is judged by."""

from __future__ import annotations

import torch
from torch import nn

from lit_digest.core.checkpoints import load_encoder_weights
from lit_digest.core.layers import feature_dim_of
from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.ssl.backbones import default_encoder
from lit_digest.ssl.probe import (
    accuracy_metrics,
    check_num_classes,
    class_predictions,
    classifier_test_step,
    classifier_training_step,
    classifier_validation_step,
)

__all__ = ["LinearEval", "freeze"]


def freeze(module: nn.Module) -> nn.Module:
    """No gradients and eval mode (BatchNorm uses its running statistics) for ``module``."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class LinearEval(LightningModule):
    """A linear classifier on the features of a frozen, pretrained encoder.

    The encoder (``backbone``, built from the same config as in pretraining) is loaded from
    ``checkpoint`` (a lit_digest ``.ckpt`` of any method, or a ``torch.save``'d state_dict),
    frozen and kept in eval mode; only ``classifier = Linear(D, num_classes)`` trains, on
    ``(views, labels)`` batches whose single view is a random resized crop + flip
    (``lit_digest.ssl.SupervisedViews``). Validation/test report ``val/acc`` /
    ``test/acc`` on un-augmented images.

    Defaults are the usual protocol (SimCLR arXiv 2002.05709, appendix B.6; official SupCon
    code ``main_linear.py``; solo-learn ``scripts/linear/*``): 100 epochs of SGD with momentum
    0.9, no weight decay, batch 256, lr 0.1 divided by 10 at epochs 60 and 80.

    Args:
        backbone: the encoder architecture, any ``nn.Module`` mapping images to ``(B, D)``; None: the methods'
            default ``SmallConvNet(width=16)`` (``lit_digest.ssl.backbones.default_encoder``).
        checkpoint: path of the pretrained weights; ``None`` keeps the backbone as built (a
            random-encoder baseline, or weights loaded by the caller).
        checkpoint_prefix: the encoder's key prefix in the checkpoint; ``None`` picks
            ``"backbone."`` when present, else the keys as they are.
        num_classes: classifier outputs.
        feature_dim: ``D``, if the backbone has no ``num_features`` attribute.
        optim: the classifier's optimiser and schedule (``lit_digest.core.optim.Optim``; the
            protocol's step schedule by default, ``schedule: warmup_cosine`` for a cosine).
        batchnorm_features: put a ``BatchNorm1d`` without affine parameters before the linear
            layer (MAE's linear probing, arXiv 2111.06377, appendix A.2): still a linear classifier,
            but insensitive to the scale of the features (useful for encoders with unnormalised
            outputs, e.g. at random initialisation).
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        checkpoint: str | None = None,
        checkpoint_prefix: str | None = None,
        num_classes: int = 10,
        feature_dim: int | None = None,
        optim: Optim = Optim(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, schedule="step",
                             milestones=(60, 80), gamma=0.1),
        batchnorm_features: bool = False,
    ) -> None:
        super().__init__()
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim  # the typed block (the CLI keeps a plain dict in hparams)
        backbone = default_encoder(backbone)
        dim = feature_dim_of(backbone, feature_dim)
        if checkpoint is not None:  # fail here, before any data is read, if the weights do not fit
            load_encoder_weights(backbone, checkpoint, checkpoint_prefix)
        self.backbone = freeze(backbone)
        linear = nn.Linear(dim, num_classes)
        # (B, D) -> (B, num_classes)
        self.classifier = (nn.Sequential(nn.BatchNorm1d(dim, affine=False), linear) if batchnorm_features
                           else linear)
        self.train_acc, self.val_acc, self.test_acc = accuracy_metrics(num_classes)

    def train(self, mode: bool = True) -> LinearEval:
        """Lightning switches the whole module to train mode every epoch; the encoder stays in eval."""
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_classes)`` of normalised images ``(B, C, H, W)``."""
        return self.classifier(self.features(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).float()  # (B, D)

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return classifier_training_step(self, batch)

    def on_fit_start(self) -> None:
        check_num_classes(self, self.hparams.num_classes)  # before the sanity check can fail on them

    # -- evaluation -------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        classifier_validation_step(self, batch, dataloader_idx)

    def test_step(self, batch, batch_idx: int) -> None:
        classifier_test_step(self, batch)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """Class ``probabilities`` (B, K), the ``predicted`` class and the ``labels`` when known
        (``class_predictions``)."""
        x, labels = (batch[0], batch[1]) if isinstance(batch, (list, tuple)) else (batch, None)
        return class_predictions(self(x), labels)

    def configure_optimizers(self):
        return configure_optim(self, [{"params": list(self.classifier.parameters())}], self.optim)
