"""Self-supervised and supervised representation learning on images.

Methods (LightningModules): ``BYOL``, ``SimCLR``, ``SupCon``, ``Supervised``; frozen-encoder
evaluation: ``LinearEval``, ``KNNEval``. They share the parts in this folder:

- ``backbones``: encoders (``ResNet``, ``SmallConvNet``); ``views``: batched per-sample augmentation;
- ``losses``: pure loss functions; ``probe``: the online linear probe and evaluation steps;
- ``data`` / ``datasets`` / ``mnist`` / ``arrays``: the image DataModules; ``knn``: the one weighted kNN;
- ``callbacks``: ``KNNMonitor``, ``LogAugmentedViews``, ``EncoderReport``.
"""

from lit_digest.ssl.arrays import DigitsDataModule, NpzImageDataModule, SyntheticImageDataModule
from lit_digest.ssl.backbones import ResNet, SmallConvNet
from lit_digest.ssl.byol import BYOL
from lit_digest.ssl.callbacks import EncoderReport, KNNMonitor, LogAugmentedViews
from lit_digest.ssl.data import ImageDataModule, TensorImageDataset
from lit_digest.ssl.datasets import CIFAR10DataModule, CIFAR100DataModule, ImageFolderDataModule, STL10DataModule
from lit_digest.ssl.knn_eval import KNNEval
from lit_digest.ssl.linear_eval import LinearEval
from lit_digest.ssl.mnist import FashionMNISTDataModule, MNISTDataModule
from lit_digest.ssl.simclr import SimCLR
from lit_digest.ssl.supcon import SupCon
from lit_digest.ssl.supervised import Supervised
from lit_digest.ssl.views import BYOLViews, MultiView, SimCLRViews, SupervisedViews, ViewAugment

__all__ = [
    "BYOL", "SimCLR", "SupCon", "Supervised", "LinearEval", "KNNEval",
    "ResNet", "SmallConvNet", "ViewAugment", "MultiView", "BYOLViews", "SimCLRViews", "SupervisedViews",
    "ImageDataModule", "TensorImageDataset", "CIFAR10DataModule", "CIFAR100DataModule", "STL10DataModule",
    "MNISTDataModule", "FashionMNISTDataModule", "ImageFolderDataModule", "DigitsDataModule", "NpzImageDataModule",
    "SyntheticImageDataModule", "KNNMonitor", "LogAugmentedViews", "EncoderReport",
]
