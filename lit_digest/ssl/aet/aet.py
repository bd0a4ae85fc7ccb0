"""AET: Auto-Encoding Transformations (Zhang, Qi, Wang, Luo, "AET vs. AED", arXiv 1901.04596)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lit_digest.core.layers import feature_dim_of
from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.ssl.aet.nin import default_nin
from lit_digest.ssl.aet.transforms import ProjectiveTransformation, Transformation, Transformed
from lit_digest.ssl.probe import check_num_classes, encoder_predict_step

__all__ = ["AET", "OFFICIAL_OPTIM", "fill_value", "parameter_mse", "single_view"]

# The official CIFAR run (cifar/{affine,projective}/main.py): SGD, Nesterov momentum 0.9, weight decay 5e-4 on
# every parameter, lr 0.1 x 0.2 at epochs 240, 480, 640 and 800 (0.1, 0.02, 0.004, 8e-4, 1.6e-4), 1500 epochs of
# batch 512. The official code then lowers the rate linearly from 1.6e-4 to 1e-5 over epochs 1000-1499: left out
# (the "step" schedule has no linear tail), the rate stays at 1.6e-4.
OFFICIAL_OPTIM = Optim(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="step",
                       milestones=(240, 480, 640, 800), gamma=0.2)


def parameter_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """AET's loss (arXiv 1901.04596, eq. 1 with eq. 2's parameter distance): the mean squared difference of
    predicted and true normalised parameters, ``(B, K), (B, K) -> ()`` in float32."""
    return F.mse_loss(prediction.float(), target.float())


def single_view(views) -> torch.Tensor:
    """The one view of a training batch (``PadCropViews`` gives a list of one)."""
    if isinstance(views, (list, tuple)):
        if len(views) != 1:
            raise ValueError(f"AET and AED train on one view per image, got {len(views)}: use "
                             "lit_digest.ssl.aet.PadCropViews (or any one-view pipeline) as data.init_args.views")
        return views[0]
    return views


def fill_value(module: LightningModule, x: torch.Tensor, fill: float) -> torch.Tensor:
    """The colour ``fill`` (in [0, 1], before normalisation) as the DataModule normalises it: ``(1, C, 1, 1)``."""
    dm = module.trainer.datamodule if module._trainer is not None else None
    grey = torch.full((1, x.shape[1], 1, 1), fill, dtype=torch.float32, device=x.device)
    return dm.normalize(grey).contiguous() if hasattr(dm, "normalize") else grey


class AET(LightningModule):
    """A Siamese encoder sees an image and a randomly transformed copy; a decoder regresses the transformation's
    parameters from the two feature vectors (arXiv 1901.04596, section 3, figure 1(b)).

    Training batches are ``(views, labels)`` with one view per image (``PadCropViews``, the official random crop
    and flip); the transformation is drawn and applied here, per sample, on the device, from the DataModule's
    per-rank random stream. Labels are not used. ``forward`` returns encoder features; ``self.backbone`` is the
    encoder to evaluate (``BlockClassifier``, ``LinearEval``, ``KNNEval``).

    As the official code (``cifar/*/NetworkInNetwork.py``, ``Regressor``): the encoder runs on the original and
    on the transformed batch apart (BatchNorm statistics per batch), the decoder is one linear layer on the two
    pooled feature vectors concatenated, followed by a tanh for the affine targets (all in [-1, 1]) and nothing
    for the projective ones; the loss is the MSE of the normalised parameters. The transformed image is filled
    with grey (128 of 255, the official ``fillcolor``) outside the original.

    Validation logs ``val/param_mse`` on transformations drawn from a fixed seed per batch, beside
    ``val/mean_mse``, the error of predicting the batch's mean target (what a decoder that learnt nothing about
    the images reaches at best), and returns the features for ``KNNMonitor``.

    Args:
        backbone: the encoder, any ``nn.Module`` mapping images to ``(B, D)`` (``NetworkInNetwork`` in the paper);
            None: ``NetworkInNetwork(width=32)`` (``lit_digest.ssl.aet.nin.default_nin``).
        transformation: ``AffineTransformation`` (AET-affine) or ``ProjectiveTransformation`` (AET-project); None:
            ``ProjectiveTransformation()``, the paper's better variant (CIFAR-10 conv error 7.82% vs 9.41%, table 1).
        feature_dim: ``D``, if the backbone has no ``num_features`` attribute.
        fill: colour outside the transformed image, in [0, 1] before normalisation.
        tanh: squash the decoder's output into [-1, 1]; ``None``: when the transformation's targets are bounded.
        optim: the official schedule by default (``OFFICIAL_OPTIM``).
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        transformation: Transformation | None = None,
        feature_dim: int | None = None,
        fill: float = 128 / 255,
        tanh: bool | None = None,
        optim: Optim = OFFICIAL_OPTIM,
    ) -> None:
        super().__init__()
        transformation = ProjectiveTransformation() if transformation is None else transformation
        if not isinstance(transformation, Transformation):
            raise TypeError(f"AET: transformation must be a lit_digest.ssl.aet Transformation (AffineTransformation, "
                            f"ProjectiveTransformation), got {type(transformation).__name__}")
        if not 0 <= fill <= 1:
            raise ValueError(f"AET: fill is a colour in [0, 1], got {fill}")
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim  # the typed block (the CLI keeps a plain dict in hparams)
        backbone = default_nin(backbone)
        dim = feature_dim_of(backbone, feature_dim)
        self.backbone = backbone
        self.transformation = transformation
        self.decoder = nn.Linear(2 * dim, transformation.num_params)  # (B, 2D) -> (B, K)
        nn.init.zeros_(self.decoder.bias)
        self.tanh = transformation.bounded if tanh is None else tanh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, D)`` of normalised images ``(B, C, H, W)``."""
        return self.backbone(x)

    def predict_transformation(self, x: torch.Tensor, transformed: torch.Tensor) -> torch.Tensor:
        """The decoder's estimate ``(B, K)`` of the normalised parameters that turned ``x`` into ``transformed``."""
        features = torch.cat([self.backbone(x), self.backbone(transformed)], dim=1)  # (B, 2D): two passes
        out = self.decoder(features)
        return torch.tanh(out) if self.tanh else out

    def transform(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Transformed:
        """A random transformation of every normalised image of ``x``, with its target."""
        return self.transformation(x, generator=generator, fill=fill_value(self, x, self.hparams.fill))

    def _generator(self, device: torch.device) -> torch.Generator | None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        return dm.generator(device) if hasattr(dm, "generator") else None

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        views, _ = batch
        x = single_view(views)
        t = self.transform(x, self._generator(x.device))
        loss = parameter_mse(self.predict_transformation(x, t.images), t.target)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/mean_mse", t.target.var(dim=0, correction=0).mean())
        return loss

    def on_fit_start(self) -> None:
        check_num_classes(self, None)  # the images' channels against the encoder's, before the sanity check

    # -- evaluation -------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        x, _ = batch
        features = self.backbone(x)
        if dataloader_idx == 0:  # loader 1 is the kNN bank
            generator = torch.Generator(device=x.device).manual_seed(10_000 + batch_idx)
            t = self.transform(x, generator)
            self.log("val/param_mse", parameter_mse(self.predict_transformation(x, t.images), t.target),
                     add_dataloader_idx=False, prog_bar=True)
            self.log("val/mean_mse", t.target.var(dim=0, correction=0).mean(), add_dataloader_idx=False)
        return {"features": features}

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return encoder_predict_step(self, batch)

    def configure_optimizers(self):
        # every parameter decays, as in the official code (optim.SGD(net.parameters(), weight_decay=5e-4))
        return configure_optim(self, [{"params": [p for p in self.parameters() if p.requires_grad]}], self.optim)
