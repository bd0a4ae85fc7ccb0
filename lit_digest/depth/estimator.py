"""Training a monocular depth estimator on RGB-D batches, MiDaS-style (Ranftl et al., arXiv 1907.01341).

The estimator here is the frozen base model that the boosting method (arXiv 2105.14021) wraps; it is
trained at one resolution, ``train_size`` (MiDaS: 384 px), on whole images or random square crops of them
(``crop_min``), with MiDaS' scale- and shift-invariant losses, so that it predicts relative depth only.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.depth.boost.pipeline import estimate, resize
from lit_digest.depth.losses import gradient_matching_loss, ssi_trimmed_mae
from lit_digest.depth.metrics import depth_metrics, sample_means
from lit_digest.depth.nets import SmallDepthNet

__all__ = ["DepthEstimation", "random_square_crops"]


def random_square_crops(image: torch.Tensor, depth: torch.Tensor, crop_min: float,
                        size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One random square per sample, of side ``crop_min`` to 1 times the shorter side, resized to ``size`` (default:
    the shorter side): images (B, 3, H, W) and depths (B, 1, H, W) cropped alike."""
    h, w = image.shape[-2:]
    out_size = size or min(h, w)
    images, depths = [], []
    for b in range(image.shape[0]):
        side = max(1, int(min(h, w) * (crop_min + (1 - crop_min) * float(torch.rand(())))))
        y0, x0 = (int(torch.randint(0, n - side + 1, ())) for n in (h, w))
        window = (slice(b, b + 1), slice(None), slice(y0, y0 + side), slice(x0, x0 + side))
        images.append(resize(image[window], (out_size, out_size)))
        depths.append(resize(depth[window], (out_size, out_size)))
    return torch.cat(images), torch.cat(depths)  # (B, 3, S, S), (B, 1, S, S)


class DepthEstimation(LightningModule):
    """A depth network trained with ``ssitrim + alpha * gradient matching`` (1907.01341 eq. 9 and 11; trim 20%,
    alpha 0.5, 4 scales as there) on images and depths area-resized to ``train_size``, flipped left-right
    at random; with ``crop_min < 1`` each image is first cropped to a random square of ``crop_min`` to 1 of its
    shorter side, so that the network also sees the scene's parts at the scale the boosting patches feed it.

    Validation reports, for every input resolution in ``eval_sizes`` (the longer side fed to the network,
    the estimate resized back), RMSE, AbsRel and depth-edge F1 at the native resolution
    (``val/rmse@48`` ...): the paper's observation (section 3) read off one model.

    Args:
        net: the estimator, ``(B, 3, H, W)`` in [0, 1] -> ``(B, 1, H, W)``; None: ``SmallDepthNet()``.
        train_size: side of the training images (the estimator's "receptive field" in the pipeline).
        grad_weight: ``alpha`` of the gradient-matching term.
        trim: share of the largest residuals left out of ``ssitrim``.
        crop_min: the smallest crop side as a share of the image's shorter side (1: whole images). The paper's
            base networks learnt from photographs of every framing and scale; whole procedural scenes at one
            size show the network none of the zoomed-in views that the patch stage feeds it.
        eval_sizes: validation input sizes.
        multiple_of: input sides are rounded to a multiple of this (the network's total stride).
        optim: Adam, lr 1e-3 with cosine decay (ours: the net is trained from scratch, MiDaS fine-tunes a
            pretrained encoder at 1e-5 / 1e-4).
    """

    def __init__(self, net: nn.Module | None = None, train_size: int = 48, grad_weight: float = 0.5, trim: float = 0.2,
                 crop_min: float = 1.0, eval_sizes: tuple[int, ...] = (48, 96, 192), multiple_of: int = 4,
                 optim: Optim = Optim(name="adam", lr=1e-3, schedule="warmup_cosine", final_lr_ratio=0.05)) -> None:
        super().__init__()
        if train_size % multiple_of:
            raise ValueError(f"train_size {train_size} must be a multiple of multiple_of {multiple_of}")
        if not 0 < crop_min <= 1:
            raise ValueError(f"crop_min must be in (0, 1] (a share of the shorter side), got {crop_min}")
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim
        self.net = SmallDepthNet() if net is None else net
        names = [f"{k}@{size}" for size in eval_sizes for k in ("rmse", "absrel", "f1")]
        self.metrics = nn.ModuleDict({stage: sample_means(names, f"{stage}/") for stage in ("val", "test")})

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Relative depth (B, 1, H, W) of images (B, 3, H, W) in [0, 1], at their own resolution."""
        return self.net(image)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        image, depth = batch
        size = (self.hparams.train_size, self.hparams.train_size)
        if self.hparams.crop_min < 1:
            image, depth = random_square_crops(image, depth, self.hparams.crop_min, self.hparams.train_size)
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
        means = self.metrics[prefix]
        for size in self.hparams.eval_sizes:
            pred = estimate(self.net, image, size, self.hparams.multiple_of)
            metrics = depth_metrics(pred, depth)
            for k in ("rmse", "absrel", "f1"):
                means[f"{k}@{size}"].update(metrics[k])
        self.log_dict(means)

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
