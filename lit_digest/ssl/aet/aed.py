"""AED: the auto-encoding-data baseline that AET is compared with (arXiv 1901.04596, figure 1(a))."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lit_digest.core.layers import feature_dim_of
from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.ssl.aet.aet import OFFICIAL_OPTIM, single_view
from lit_digest.ssl.aet.nin import default_nin
from lit_digest.ssl.probe import check_num_classes, encoder_predict_step

__all__ = ["AED", "ImageDecoder"]


class ImageDecoder(nn.Module):
    """A feature vector ``(B, D)`` -> an image ``(B, C, S, S)``: ``Linear(D, w * s * s)`` to a ``w x s x s`` map
    (``s = S / 2^upsamplings``), then ``upsamplings`` times ``ConvTranspose(4, stride 2) -> BN -> ReLU`` halving
    the channels, and a 3x3 convolution to ``C`` channels with no activation (the targets are normalised images).
    Our design: the paper's AED text gives no decoder (section 1, figure 1(a)) and the official code none."""

    def __init__(self, feature_dim: int, image_size: int = 32, out_channels: int = 3, width: int = 256,
                 upsamplings: int = 3) -> None:
        super().__init__()
        if upsamplings < 1 or image_size % 2**upsamplings:
            raise ValueError(f"ImageDecoder: image_size {image_size} must be a multiple of 2^upsamplings "
                             f"(upsamplings={upsamplings} >= 1)")
        if width < 2**upsamplings:
            raise ValueError(f"ImageDecoder: width {width} must be at least 2^upsamplings = {2**upsamplings}")
        self.start = image_size // 2**upsamplings
        self.width = width
        self.project = nn.Sequential(nn.Linear(feature_dim, width * self.start**2, bias=False),
                                     nn.BatchNorm1d(width * self.start**2), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        c = width
        for _ in range(upsamplings):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
                       nn.ReLU(inplace=True)]
            c //= 2
        layers.append(nn.Conv2d(c, out_channels, 3, padding=1))
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(-1, self.width, self.start, self.start)  # (B, w, s, s)
        return self.upsample(x)  # (B, C, S, S)


class AED(LightningModule):
    """The baseline the paper argues against: the same encoder, trained to reconstruct its input image from its
    features (auto-encoding data, arXiv 1901.04596 section 1 and figure 1(a)), mean squared error on the
    normalised pixels. It reads the same pooled feature vector that AET's decoder reads, trains on the same
    views (``PadCropViews``) with the same optimiser and schedule (``OFFICIAL_OPTIM``), so that the two differ
    only in what is decoded. The decoder is ours (``ImageDecoder``).

    Validation logs ``val/recon_mse`` and returns the features for ``KNNMonitor``.

    Args:
        backbone: the encoder, any ``nn.Module`` mapping images to ``(B, D)``; None: ``NetworkInNetwork(width=32)``
            (``lit_digest.ssl.aet.nin.default_nin``).
        image_size: side of the training views (the decoder's output size).
        in_channels: channels of the images.
        feature_dim: ``D``, if the backbone has no ``num_features`` attribute.
        decoder_width, upsamplings: ``ImageDecoder``'s sizes.
        optim: as AET's by default.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        image_size: int = 32,
        in_channels: int = 3,
        feature_dim: int | None = None,
        decoder_width: int = 256,
        upsamplings: int = 3,
        optim: Optim = OFFICIAL_OPTIM,
    ) -> None:
        super().__init__()
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim
        backbone = default_nin(backbone)
        self.backbone = backbone
        self.decoder = ImageDecoder(feature_dim_of(backbone, feature_dim), image_size, in_channels, decoder_width,
                                    upsamplings)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, D)`` of normalised images ``(B, C, H, W)``."""
        return self.backbone(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.backbone(x))  # (B, C, S, S)

    def _loss(self, x: torch.Tensor) -> torch.Tensor:
        size, channels = self.hparams.image_size, self.hparams.in_channels
        if x.shape[1:] != (channels, size, size):
            raise ValueError(f"AED was built for {channels}x{size}x{size} images, got {tuple(x.shape[1:])}: set "
                             f"model.init_args.image_size / in_channels to the views' size")
        return F.mse_loss(self.reconstruct(x).float(), x.float())

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        views, _ = batch
        loss = self._loss(single_view(views))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_fit_start(self) -> None:
        check_num_classes(self, None)

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        x, _ = batch
        if dataloader_idx == 0:
            self.log("val/recon_mse", self._loss(x), add_dataloader_idx=False, prog_bar=True)
        return {"features": self.backbone(x)}

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return encoder_predict_step(self, batch)

    def configure_optimizers(self):
        return configure_optim(self, [{"params": [p for p in self.parameters() if p.requires_grad]}], self.optim)
