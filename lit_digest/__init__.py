"""lit_digest: Lightning implementations of the methods reviewed in two ML paper-digest channels.

    from lit_digest import BYOL, CIFAR10DataModule
    from lit_digest.nn import ResNet
"""

from lit_digest.callbacks import (
    ChannelsLast,
    CheckpointOnException,
    EncoderReport,
    FiniteLossGuard,
    KNNMonitor,
    LogAugmentedViews,
)
from lit_digest.data import (
    ByteTextDataModule,
    CIFAR10DataModule,
    CIFAR100DataModule,
    DigitsDataModule,
    EmbeddingsDataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    NpzImageDataModule,
    STL10DataModule,
    SyntheticEmbeddingsDataModule,
    SyntheticImageDataModule,
)
from lit_digest.methods import (
    BYOL,
    MUSE,
    Codistillation,
    KNNEval,
    LinearEval,
    MUSEProcrustes,
    SimCLR,
    SupCon,
    Supervised,
)
from lit_digest.nn import MLP, ResNet, SmallConvNet
from lit_digest.optim import LARS
from lit_digest.strategies import CodistillationStrategy
from lit_digest.transforms import BYOLViews, MultiView, SimCLRViews, SupervisedViews, ViewAugment

__version__ = "0.1.0"

__all__ = [
    "KNNEval", "LinearEval", "SimCLR", "SupCon", "Supervised",
    "MUSE", "ByteTextDataModule", "Codistillation", "CodistillationStrategy", "EmbeddingsDataModule",
    "MUSEProcrustes", "SyntheticEmbeddingsDataModule",
    "BYOL", "BYOLViews", "CIFAR10DataModule", "CIFAR100DataModule", "ChannelsLast", "CheckpointOnException",
    "DigitsDataModule",
    "EncoderReport", "FashionMNISTDataModule", "FiniteLossGuard", "ImageFolderDataModule", "KNNMonitor", "LARS",
    "LogAugmentedViews", "MLP", "MNISTDataModule", "MultiView", "NpzImageDataModule", "ResNet",
    "STL10DataModule", "SimCLRViews", "SmallConvNet", "SupervisedViews", "SyntheticImageDataModule",
    "ViewAugment",
]
