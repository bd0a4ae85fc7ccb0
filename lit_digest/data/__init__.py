"""LightningDataModules by domain."""

from lit_digest.data.images import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DatasetNotFoundError,
    DigitsDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    NpzImageDataModule,
    STL10DataModule,
    SyntheticImageDataModule,
    TensorImageDataset,
)

__all__ = [
    "CIFAR10DataModule", "CIFAR100DataModule", "DatasetNotFoundError", "DigitsDataModule",
    "FashionMNISTDataModule", "ImageDataModule", "ImageFolderDataModule", "MNISTDataModule",
    "NpzImageDataModule", "STL10DataModule", "SyntheticImageDataModule", "TensorImageDataset",
]
