"""Training a monocular depth estimator on RGB-D batches, MiDaS-style (Ranftl et al., arXiv 1907.01341).

The estimator here is the frozen base model that the boosting method (arXiv 2105.14021) wraps; it is
trained on whole images at one resolution, ``train_size`` (MiDaS: 384 px), with MiDaS' scale- and
shift-invariant losses, so that it predicts relative depth only.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.depth.boost.pipeline import estimate, resize
from lit_digest.depth.losses import gradient_matching_loss, ssi_trimmed_mae
from lit_digest.depth.metrics import depth_metrics

__all__ = ["DepthEstimation"]


class DepthEstimation(LightningModule):
    """A depth network trained with ``ssitrim + alpha * gradient matching`` (1907.01341 eq. 9 and 11; trim 20%,
    alpha 0.5, 4 scales as there) on images and depths area-resized to ``train_size``, flipped left-right
    at random.

    Validation reports, for every input resolution in ``eval_sizes`` (the longer side fed to the network,
    the estimate resized back), RMSE, AbsRel and depth-edge F1 at the native resolution
    (``val/rmse@48`` ...): the paper's observation (section 3) read off one model.

    Args:
        net: the estimator, ``(B, 3, H, W)`` in [0, 1] -> ``(B, 1, H, W)``.
        train_size: side of the training images (the estimator's "receptive field" in the pipeline).
        grad_weight: ``alpha`` of the gradient-matching term.
        trim: share of the largest residuals left out of ``ssitrim``.
        eval_sizes: validation input sizes.
        multiple_of: input sides are rounded to a multiple of this (the network's total stride).
        optim: Adam, lr 1e-3 with cosine decay (ours: the net is trained from scratch, MiDaS fine-tunes a
            pretrained encoder at 1e-5 / 1e-4).
    """

    def __init__(self, net: nn.Module, train_size: int = 48, grad_weight: float = 0.5, trim: float = 0.2,
                 eval_sizes: tuple[int, ...] = (48, 96, 192), multiple_of: int = 4,
                 optim: Optim = Optim(name="adam", lr=1e-3, schedule="warmup_cosine", final_lr_ratio=0.05)) -> None:
        super().__init__()
        if train_size % multiple_of:
            raise ValueError(f"train_size {train_size} must be a multiple of multiple_of {multiple_of}")
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Relative depth (B, 1, H, W) of images (B, 3, H, W) in [0, 1], at their own resolution."""
        return self.net(image)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        image, depth = batch
        size = (self.hparams.train_size, self.hparams.train_size)
        image, depth = resize(image, size), resize(depth, size)
        flip = torch.rand(image.shape[0], device=image.device) < 0.5
        image = torch.where(flip[:, None, None, None], image.flip(-1), image)  # (B, 3, S, S)
        depth = torch.where(flip[:, None, None, None], depth.flip(-1), depth)  # (B, 1, S, S)
        pred = self.net(image)
        ssi = ssi_trimmed_mae(pred, depth, self.hparams.trim)
        grad = gradient_matching_loss(pred, depth)
        loss = ssi + self.hparams.grad_weight * grad
        self.log_dict({"train/loss": loss, "train/ssi": ssi, "train/grad": grad}, prog_bar=False,
                      batch_size=image.shape[0])
        return loss

    def _evaluate(self, batch, prefix: str) -> None:
        image, depth = batch
        for size in self.hparams.eval_sizes:
            pred = estimate(self.net, image, size, self.hparams.multiple_of)
            metrics = depth_metrics(pred, depth)
            self.log_dict({f"{prefix}/{k}@{size}": metrics[k].mean() for k in ("rmse", "absrel", "f1")},
                          batch_size=image.shape[0])

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict:
        image, names = batch
        return {"depth": estimate(self.net, image, self.hparams.train_size, self.hparams.multiple_of),
                "name": list(names)}

    def configure_optimizers(self):
        return configure_optim(self, [{"params": [p for p in self.net.parameters() if p.requires_grad]}], self.optim)
