"""GANs on images. General parts, reusable by any GAN here:

- ``layers``: gated convolutions (Yu et al., arXiv 1806.03589) and TensorFlow-style local response normalisation;
- ``patchgan``: the SN-PatchGAN discriminator; ``losses``: adversarial losses, gradient penalty, per-pixel,
  perceptual, style and total-variation losses; ``vgg``: frozen VGG-16 features with torchvision's weights;
- face data: ``masks`` (free-form strokes, boxes, face regions), ``sketch`` (Canny, HED), ``colour`` (colour
  maps), ``faces`` (the DataModules).

``losses`` also holds the logistic / non-saturating losses and R1 of StyleGAN-family GANs; ``optim`` the
per-player optimisers and schedules.

Methods: ``scfegan/`` (SC-FEGAN, Jo & Park, arXiv 1902.06838), ``ganroses/`` (GANs N' Roses, Chong & Forsyth,
arXiv 2106.06561).
"""

from lit_digest.core.vgg import VGG16Features, load_vgg16_features
from lit_digest.gan.faces import FaceConditions, FaceEditingDataset, FaceFolderDataModule, SyntheticFaceDataModule
from lit_digest.gan.ganroses import (
    GANsNRoses,
    PhotosToDrawingsDataModule,
    TranslationPanels,
    UnpairedFolderDataModule,
)
from lit_digest.gan.layers import GatedConv2d, GatedConvTranspose2d
from lit_digest.gan.masks import MaskConfig
from lit_digest.gan.patchgan import SNPatchGAN
from lit_digest.gan.scfegan import SCFEGAN, EditingPanels, InpaintingReport, SCFEGANGenerator

__all__ = [
    "SCFEGAN", "SCFEGANGenerator", "EditingPanels", "InpaintingReport", "GatedConv2d", "GatedConvTranspose2d",
    "SNPatchGAN", "MaskConfig", "FaceConditions", "FaceEditingDataset", "FaceFolderDataModule",
    "SyntheticFaceDataModule", "VGG16Features", "load_vgg16_features", "GANsNRoses", "PhotosToDrawingsDataModule",
    "UnpairedFolderDataModule", "TranslationPanels",
]
