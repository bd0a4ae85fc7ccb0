"""Image data sets on disk: torchvision's (CIFAR-10/100, STL-10) and any image folder (MNIST-format sets:
``mnist.py``)."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torchvision
import torchvision.transforms.v2 as T
from torch.utils.data import Dataset

from lit_digest.core.download import missing_data_error
from lit_digest.ssl.data import ImageDataModule, Splits, TensorImageDataset, as_nchw_uint8

__all__ = ["CIFAR10DataModule", "CIFAR100DataModule", "STL10DataModule", "ImageFolderDataModule"]

# -- torchvision data sets ------------------------------------------------------------------


def _download_url(cls) -> str:
    if hasattr(cls, "url"):
        return cls.url
    mirrors = getattr(cls, "mirrors", None)
    resources = getattr(cls, "resources", None)
    if mirrors and resources:
        return mirrors[0] + resources[0][0]
    return "(see torchvision.datasets." + cls.__name__ + ")"


def _torchvision_open(cls, root: str, download: bool, **kwargs):
    """Open a torchvision data set; a missing or corrupt copy gets an error naming the path
    and the download URL."""
    try:
        return cls(root=root, download=download, **kwargs)
    except (RuntimeError, OSError, urllib.error.URLError, ValueError) as err:
        raise missing_data_error(
            cls.__name__, root, url=_download_url(cls),
            reason=("missing or corrupt, and the download failed: " if download else "missing or corrupt: ")
            + f"{type(err).__name__}: {err}",
            fix="extract it there, or set data.init_args.data_dir to a folder that holds it",
        ) from err


class _TorchvisionArrays(ImageDataModule):
    """Data sets that torchvision holds as in-memory arrays (CIFAR)."""

    dataset_cls: type = torchvision.datasets.CIFAR10

    def __init__(self, data_dir: str = "data", download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir = data_dir
        self.download = download

    def prepare_data(self) -> None:
        for train in (True, False):
            _torchvision_open(self.dataset_cls, self.data_dir, self.download, train=train)

    def make_splits(self) -> Splits:
        train = _torchvision_open(self.dataset_cls, self.data_dir, False, train=True)
        test = _torchvision_open(self.dataset_cls, self.data_dir, False, train=False)
        train_set = TensorImageDataset(as_nchw_uint8(train.data), torch.as_tensor(np.asarray(train.targets)))
        test_set = TensorImageDataset(as_nchw_uint8(test.data), torch.as_tensor(np.asarray(test.targets)))
        return Splits(pretrain=train_set, eval_train=train_set, val=test_set, test=test_set)


class CIFAR10DataModule(_TorchvisionArrays):
    """CIFAR-10 (50k train / 10k test, 32x32); validation and test both use the test split."""

    name = "cifar10"
    dataset_cls = torchvision.datasets.CIFAR10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    num_classes = 10


class CIFAR100DataModule(_TorchvisionArrays):
    """CIFAR-100 (50k train / 10k test, 32x32, 100 classes)."""

    name = "cifar100"
    dataset_cls = torchvision.datasets.CIFAR100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    num_classes = 100


class STL10DataModule(ImageDataModule):
    """STL-10 (96x96): pretraining on ``train+unlabeled`` (105k images, unlabeled ones have
    label -1), evaluation on the 5k labeled ``train`` images, validation/test on ``test``.

    ``pretrain_split="train"`` trains on the labeled images only: the supervised baseline and
    linear evaluation, which learn nothing from unlabeled batches."""

    name = "stl10"
    mean = (0.4467, 0.4398, 0.4066)
    std = (0.2603, 0.2566, 0.2713)
    num_classes = 10

    def __init__(self, data_dir: str = "data", download: bool = True,
                 pretrain_split: Literal["train+unlabeled", "train"] = "train+unlabeled", **kwargs) -> None:
        super().__init__(**kwargs)
        if pretrain_split not in ("train+unlabeled", "train"):
            raise ValueError(f"pretrain_split must be 'train+unlabeled' or 'train', got {pretrain_split!r}")
        self.data_dir = data_dir
        self.download = download
        self.pretrain_split = pretrain_split

    def prepare_data(self) -> None:
        _torchvision_open(torchvision.datasets.STL10, self.data_dir, self.download, split="test")

    def make_splits(self) -> Splits:
        def arrays(split: str) -> TensorImageDataset:
            ds = _torchvision_open(torchvision.datasets.STL10, self.data_dir, False, split=split)
            return TensorImageDataset(as_nchw_uint8(ds.data), torch.as_tensor(ds.labels))

        labeled = arrays("train")
        test = arrays("test")
        pretrain = labeled if self.pretrain_split == "train" else arrays("train+unlabeled")
        return Splits(pretrain=pretrain, eval_train=labeled, val=test, test=test)


# -- image folders ----------------------------------------------------------------------------


def _path_only(path: str) -> str:
    return path  # decoding happens in _FolderImages, with a clear error per file


def _decode(path: str) -> torch.Tensor:
    try:
        return torchvision.io.decode_image(path, mode=torchvision.io.ImageReadMode.RGB)  # (3, H, W) uint8
    except Exception as err:
        raise ValueError(f"Could not decode image '{path}': {err}. Remove or replace the file.") from err


class _FolderImages(Dataset):
    """Evaluation images: shorter side resized to ``size``, centre crop to ``size``: uint8 ``(3, size, size)``."""

    def __init__(self, folder: torchvision.datasets.DatasetFolder, size: int) -> None:
        self.folder = folder
        self.resize = T.Compose([T.Resize(size, antialias=True), T.CenterCrop(size)])

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.folder.samples[i]
        return self.resize(_decode(path)), label


class _WholeImages(_FolderImages):
    """Training images, whole: resized (aspect ratio not kept) to a ``size x size`` square so that batches
    stack, with their original ``(height, width)``. The views crop them in the original's pixels
    (``ViewAugment.sample_params(sizes=...)``), so every border and the full aspect-ratio range of the
    random resized crop are seen, as BYOL and SimCLR crop from the whole image."""

    def __init__(self, folder: torchvision.datasets.DatasetFolder, size: int) -> None:
        self.folder = folder
        self.resize = T.Resize((size, size), antialias=True)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        path, label = self.folder.samples[i]
        image = _decode(path)
        return self.resize(image), label, torch.tensor(image.shape[-2:])


class ImageFolderDataModule(ImageDataModule):
    """Any folder tree ``<data_dir>/<train_dir>/<class>/*.jpg`` and ``<data_dir>/<val_dir>/<class>/*``
    (ImageNet, ImageNet-100, Imagenette ...).

    Training images are decoded whole, resized to ``load_size x load_size`` with their original size
    beside them, and cropped/augmented to the views' crop size on the device, the crops drawn in the
    original image's pixels (no centre crop, no distortion); evaluation images are resized to
    ``load_size`` (shorter side) and centre-cropped to ``image_size`` (256 -> 224 as usual).
    """

    name = "image_folder"
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def __init__(self, data_dir: str, train_dir: str = "train", val_dir: str = "val", image_size: int = 224,
                 load_size: int = 256, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir, self.train_dir, self.val_dir = data_dir, train_dir, val_dir
        self.image_size, self.load_size = image_size, load_size

    def _folder(self, sub: str) -> torchvision.datasets.ImageFolder:
        path = Path(self.data_dir) / sub
        if not path.is_dir():
            raise missing_data_error(
                "Image folder", path, url="https://github.com/fastai/imagenette (Imagenette, for example)",
                fix=f"ImageFolderDataModule expects <data_dir>/{self.train_dir}/<class>/<images> and "
                f"<data_dir>/{self.val_dir}/<class>/<images>: set data.init_args.data_dir",
            )
        return torchvision.datasets.ImageFolder(str(path), loader=_path_only)

    def make_splits(self) -> Splits:
        train, val = self._folder(self.train_dir), self._folder(self.val_dir)
        self.num_classes = len(train.classes)
        pretrain = _WholeImages(train, self.load_size)
        eval_train = _EvalCrop(_FolderImages(train, self.load_size), self.image_size)
        val_set = _EvalCrop(_FolderImages(val, self.load_size), self.image_size)
        return Splits(pretrain=pretrain, eval_train=eval_train, val=val_set, test=val_set)


class _EvalCrop(Dataset):
    def __init__(self, dataset: Dataset, size: int) -> None:
        self.dataset, self.crop = dataset, T.CenterCrop(size)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.dataset[i]
        return self.crop(x), y
