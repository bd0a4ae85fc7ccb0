"""The paper's evaluation: classifiers trained on the frozen feature maps of an encoder's second block
(arXiv 1901.04596, section 4.1.2; RotNet's protocol, arXiv 1803.07728 section 3.1)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from lit_digest.core.checkpoints import load_encoder_weights
from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.ssl.aet.nin import conv_bn_relu, default_nin
from lit_digest.ssl.linear_eval import freeze
from lit_digest.ssl.probe import (
    accuracy_metrics,
    check_num_classes,
    class_predictions,
    classifier_test_step,
    classifier_training_step,
    classifier_validation_step,
)

__all__ = ["NonLinearHead", "ConvBlockHead", "BlockClassifier", "init_classifier"]


@torch.no_grad()
def init_classifier(module: nn.Module) -> nn.Module:
    """The official classifiers' initialisation (``NonLinearClassifier.py``, ``initilize``): convolutions
    ``N(0, 2 / (k * k * out))``, linear weights ``N(0, 2 / out_features)``, biases 0, BatchNorm 1 and 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0, math.sqrt(2.0 / m.out_features))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_parameters()
    return module


class NonLinearHead(nn.Sequential):
    """The paper's non-linear classifier on a frozen block's feature map ``(B, C, h, w)``: ``Flatten ->
    Linear(C*h*w, hidden, no bias) -> BN -> ReLU -> Linear(hidden, classes)``; ``hidden = min(20 * classes, 2048)``
    (200 for CIFAR-10), the official ``MultLayerFC2`` that ``classification.py`` trains (12288 -> 200 -> 10)."""

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int = 10, hidden_dim: int | None = None) -> None:
        hidden = min(20 * num_classes, 2048) if hidden_dim is None else hidden_dim
        c, h, w = in_shape
        super().__init__(nn.Flatten(), nn.Linear(c * h * w, hidden, bias=False), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))
        init_classifier(self)


class ConvBlockHead(nn.Module):
    """RotNet's conv classifier: a freshly trained NIN third block (3x3, 1x1, 1x1 conv-BN-ReLU of ``width``
    channels) on the frozen second block, global average pooling, a linear layer (official ``NIN_ConvBlock3``):
    ``(B, C, h, w) -> (B, classes)``. With the frozen blocks it is the supervised 3-block NIN of the paper's
    table, trained only from the third block on."""

    def __init__(self, in_channels: int, num_classes: int = 10, width: int = 192) -> None:
        super().__init__()
        self.block = nn.Sequential(conv_bn_relu(in_channels, width, 3), conv_bn_relu(width, width, 1),
                                   conv_bn_relu(width, width, 1))
        self.linear = nn.Linear(width, num_classes)
        init_classifier(self)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.linear(self.block(maps).mean(dim=(2, 3)))  # (B, classes)


class BlockClassifier(LightningModule):
    """A classifier on the frozen feature maps of block ``block`` of a pretrained encoder, as the paper evaluates
    AET on CIFAR-10 (section 4.1.2): ``head: nonlinear`` (``NonLinearHead``) or ``head: conv``
    (``ConvBlockHead``). Reports ``val/acc`` and ``test/acc``; the error rate of the paper's table is 100 minus it.

    The encoder (built as in pretraining) is loaded from ``checkpoint`` (a lit_digest ``.ckpt`` of AET, AED or
    any method, or a state_dict file), frozen and kept in eval mode; ``None`` keeps it as built (the paper's
    "random init. + conv" lower bound). It must expose ``feature_maps(x, block)`` and ``block_shape(block, size)``
    (``NetworkInNetwork`` does). Training batches are ``(views, labels)`` with one view (``PadCropViews``: the
    official random crop of the 4-padded image and flip).

    Defaults are the official ``classification.py``: SGD with Nesterov momentum 0.9, lr 0.1, weight decay 5e-4,
    batch 128, 200 epochs, lr / 10 at epochs 100 and 150.

    Args:
        backbone: the encoder architecture; None: ``NetworkInNetwork(width=32)``, the AET systems' default
            (``lit_digest.ssl.aet.nin.default_nin``).
        head: ``"nonlinear"`` or ``"conv"``.
        checkpoint, checkpoint_prefix: as ``LinearEval``'s (``"backbone."`` keys by default).
        block: the frozen block whose output the head reads (2 in the paper).
        image_size: side of the images (the non-linear head's input size is built from it).
        num_classes: classes.
        hidden_dim: the non-linear head's hidden size (``None``: ``min(20 * num_classes, 2048)``).
        optim: the head's optimiser and schedule.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        head: Literal["nonlinear", "conv"] = "nonlinear",
        checkpoint: str | None = None,
        checkpoint_prefix: str | None = None,
        block: int = 2,
        image_size: int = 32,
        num_classes: int = 10,
        hidden_dim: int | None = None,
        optim: Optim = Optim(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="step",
                             milestones=(100, 150), gamma=0.1),
    ) -> None:
        super().__init__()
        backbone = default_nin(backbone)
        if head not in ("nonlinear", "conv"):
            raise ValueError(f"BlockClassifier: head must be 'nonlinear' or 'conv', got {head!r}")
        if not (hasattr(backbone, "feature_maps") and hasattr(backbone, "block_shape")):
            raise TypeError(f"BlockClassifier needs an encoder with feature_maps(x, block) and block_shape(block, "
                            f"size), such as lit_digest.ssl.aet.NetworkInNetwork; {type(backbone).__name__} has "
                            "not: evaluate it with lit_digest.ssl.LinearEval or KNNEval instead")
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim
        if checkpoint is not None:  # fail here, before any data is read, if the weights do not fit
            load_encoder_weights(backbone, checkpoint, checkpoint_prefix)
        self.backbone = freeze(backbone)
        shape = backbone.block_shape(block, image_size)  # also checks the block number
        self.head = (NonLinearHead(shape, num_classes, hidden_dim) if head == "nonlinear"
                     else ConvBlockHead(shape[0], num_classes, getattr(backbone, "width", shape[0])))
        self.train_acc, self.val_acc, self.test_acc = accuracy_metrics(num_classes)

    def train(self, mode: bool = True) -> BlockClassifier:
        """Lightning switches the whole module to train mode every epoch; the encoder stays in eval."""
        super().train(mode)
        self.backbone.eval()
        return self

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen block's feature maps ``(B, C, h, w)``."""
        return self.backbone.feature_maps(x, self.hparams.block).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_classes)`` of normalised images."""
        return self.head(self.features(x))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return classifier_training_step(self, batch)

    def on_fit_start(self) -> None:
        check_num_classes(self, self.hparams.num_classes)

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
        # the official classifier decays every parameter (optim.SGD(model.parameters(), weight_decay=5e-4))
        return configure_optim(self, [{"params": list(self.head.parameters())}], self.optim)
