"""LightningDataModules by domain: images, word embeddings, text."""

from lit_digest.data.embeddings import (
    EmbeddingFormatError,
    Embeddings,
    EmbeddingsDataModule,
    MissingDataError,
    SyntheticEmbeddingsDataModule,
)
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
from lit_digest.data.text import ByteTextDataModule

__all__ = [
    "ByteTextDataModule", "EmbeddingFormatError", "Embeddings", "EmbeddingsDataModule", "MissingDataError",
    "SyntheticEmbeddingsDataModule",
    "CIFAR10DataModule", "CIFAR100DataModule", "DatasetNotFoundError", "DigitsDataModule",
    "FashionMNISTDataModule", "ImageDataModule", "ImageFolderDataModule", "MNISTDataModule",
    "NpzImageDataModule", "STL10DataModule", "SyntheticImageDataModule", "TensorImageDataset",
]
