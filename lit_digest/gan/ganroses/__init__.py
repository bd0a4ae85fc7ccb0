"""GANs N' Roses (Chong & Forsyth, arXiv 2106.06561): diverse image-to-image translation from a content code and
a random style code, stable because a batch holds augmentations of one image whose style codes must agree.

``GANsNRoses`` (the LightningModule), the networks (``Generator``, ``Discriminator``, ``LatentDiscriminator``), the
DataModules (``UnpairedFolderDataModule``: trainA/trainB/testA/testB folders; ``PhotosToDrawingsDataModule``: the
AT&T photos to drawn faces), ``TranslationPanels`` (W&B grids), and the scripts ``predict`` (one image in many
styles, or a folder of video frames in one style), ``official`` (import the official checkpoint) and
``experiment`` (the measured command).
"""

from lit_digest.gan.ganroses.callbacks import TranslationPanels
from lit_digest.gan.ganroses.data import Augmentation, PhotosToDrawingsDataModule, UnpairedFolderDataModule
from lit_digest.gan.ganroses.module import GANsNRoses
from lit_digest.gan.ganroses.networks import Discriminator, Generator, LatentDiscriminator

__all__ = ["GANsNRoses", "Generator", "Discriminator", "LatentDiscriminator", "Augmentation",
           "UnpairedFolderDataModule", "PhotosToDrawingsDataModule", "TranslationPanels"]
