"""Image DataModules for representation learning.

Every DataModule here serves

* pretraining batches: ``(views, labels)`` with ``views`` a list of ``(B, C, S, S)``
  float tensors, one per view of the ``views`` pipeline (labels are -1 where unknown);
* evaluation batches (validation, test, predict, kNN bank): ``(images, labels)``.

Images leave the DataLoader as uint8 ``(B, C, H, W)``: the fast path moves them to the
device and augments them there as a batch in ``on_after_batch_transfer``
(``augment_on="device"``, the default); ``augment_on="workers"`` augments each image in
the DataLoader workers instead (same pipeline, same distribution). Normalisation
(``(x - mean) / std``) always happens after transfer, in float32.

``val_dataloader`` returns two loaders: ``[val, knn_bank]``. The second is the labeled
training set without augmentation, the memory bank of the kNN monitor
(``lit_digest.callbacks.KNNMonitor``); ``knn_bank_size=0`` drops it.
"""

from __future__ import annotations

import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms.v2 as T
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Subset

from lit_digest.transforms import MultiView, to_unit_float

__all__ = [
    "DatasetNotFoundError", "ImageDataModule", "CIFAR10DataModule", "CIFAR100DataModule",
    "STL10DataModule", "MNISTDataModule", "FashionMNISTDataModule", "DigitsDataModule",
    "NpzImageDataModule", "ImageFolderDataModule", "SyntheticImageDataModule", "TensorImageDataset",
]


class DatasetNotFoundError(FileNotFoundError):
    """A data set is missing (or corrupt) and could not be downloaded."""


class TensorImageDataset(Dataset):
    """uint8 images ``(N, C, H, W)`` with integer labels ``(N,)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 images of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.labels[i]


class _AugmentInWorkers(Dataset):
    """The CPU path: each item becomes a list of float views, drawn in the worker."""

    def __init__(self, dataset: Dataset, views: MultiView) -> None:
        self.dataset, self.views = dataset, views

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.dataset[i]
        with torch.no_grad():
            return [v[0] for v in self.views(x.unsqueeze(0))], y


@dataclass
class Splits:
    pretrain: Dataset
    eval_train: Dataset
    val: Dataset
    test: Dataset


class ImageDataModule(LightningDataModule):
    """Shared loaders and on-device augmentation; subclasses only say where images come from
    (``make_splits``) and their normalisation statistics.

    Args:
        batch_size: per-device batch size (the global batch is this times the world size).
        num_workers: DataLoader workers.
        views: the pretraining view pipeline (``lit_digest.transforms.BYOLViews`` ...);
            ``None`` gives one un-augmented view.
        augment_on: ``"device"`` (uint8 to the accelerator, batched augmentation there) or
            ``"workers"`` (per-image augmentation in the DataLoader workers).
        knn_bank_size: how many labeled training images form the kNN bank in validation
            (``None``: all, ``0``: no bank loader).
        drop_last: drop the last incomplete pretraining batch (BatchNorm on tiny batches).
        seed: seed of the fixed random subsets.
    """

    name = "images"
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    num_classes = 10

    def __init__(
        self,
        batch_size: int = 256,
        num_workers: int = 4,
        views: MultiView | None = None,
        augment_on: Literal["device", "workers"] = "device",
        knn_bank_size: int | None = None,
        drop_last: bool = True,
        pin_memory: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if augment_on not in ("device", "workers"):
            raise ValueError(f"augment_on must be 'device' or 'workers', got {augment_on!r}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.views = views
        self.augment_on = augment_on
        self.knn_bank_size = knn_bank_size
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.seed = seed
        self.splits: Splits | None = None

    # -- what subclasses provide --------------------------------------------------------
    def make_splits(self) -> Splits:
        raise NotImplementedError

    # -- Lightning hooks ------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self.make_splits()

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool = False) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last,
            num_workers=self.num_workers, pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def _splits(self) -> Splits:
        if self.splits is None:
            self.setup()
        assert self.splits is not None
        return self.splits

    def train_dataloader(self) -> DataLoader:
        data = self._splits().pretrain
        if self.augment_on == "workers" and self.views is not None:
            data = _AugmentInWorkers(data, self.views)
        drop_last = self.drop_last and len(data) >= self.batch_size  # type: ignore[arg-type]
        return self._loader(data, shuffle=True, drop_last=drop_last)

    def knn_bank(self) -> Dataset:
        bank = self._splits().eval_train
        size = self.knn_bank_size
        if size is not None and size < len(bank):  # type: ignore[arg-type]
            g = torch.Generator().manual_seed(self.seed)
            bank = Subset(bank, torch.randperm(len(bank), generator=g)[:size].tolist())  # type: ignore[arg-type]
        return bank

    def val_dataloader(self) -> list[DataLoader]:
        loaders = [self._loader(self._splits().val, shuffle=False)]
        if self.knn_bank_size != 0:
            loaders.append(self._loader(self.knn_bank(), shuffle=False))
        return loaders

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._splits().test, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self._splits().test, shuffle=False)

    def eval_train_dataloader(self) -> DataLoader:
        """Labeled training images without augmentation (linear probes, kNN)."""
        return self._loader(self._splits().eval_train, shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        trainer = self.trainer
        if trainer is not None and trainer.training:
            return self.prepare_views(x), y
        return self.prepare_images(x), y

    # -- helpers ------------------------------------------------------------------------------
    def prepare_views(self, x: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
        """A training batch on the device -> normalised views: uint8 images are augmented here,
        views already drawn in the workers (a list) are only normalised."""
        if isinstance(x, (list, tuple)):
            views = list(x)
        elif self.views is not None:
            views = self.views(x)
        else:
            views = [to_unit_float(x)]
        return [self.normalize(v) for v in views]

    def prepare_images(self, x: torch.Tensor) -> torch.Tensor:
        """An evaluation batch on the device: uint8 images -> normalised float, no augmentation."""
        return self.normalize(to_unit_float(x))

    def _mean_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Built once per (statistics, device, dtype), not at every batch: mean/std can be set
        # by make_splits (computed from the data), so they are part of the key.
        key = (self.mean, self.std, x.device, x.dtype)
        cache = self.__dict__.setdefault("_mean_std_cache", {})
        if key not in cache:
            cache.clear()
            cache[key] = tuple(torch.tensor(v, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
                               for v in (self.mean, self.std))
        return cache[key]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._mean_std(x)
        x = (x - mean) / std
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._mean_std(x)
        return (x * std + mean).clamp(0, 1)

    @property
    def in_channels(self) -> int:
        return len(self.mean)


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
        raise DatasetNotFoundError(
            f"{cls.__name__} is missing or corrupt under '{os.path.abspath(root)}'"
            + (" and could not be downloaded" if download else "")
            + f" ({type(err).__name__}: {err}). Download {_download_url(cls)} and extract it there, "
            "or set data.init_args.data_dir to a folder that holds it."
        ) from err


def _as_nchw_uint8(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 3:  # (N, H, W) grey
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # NHWC
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W) or (N, H, W, C), got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images, got {x.dtype}")
    return x.contiguous()


class _TorchvisionArrays(ImageDataModule):
    """Data sets that torchvision holds as in-memory arrays (CIFAR, MNIST)."""

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
        train_set = TensorImageDataset(_as_nchw_uint8(train.data), torch.as_tensor(np.asarray(train.targets)))
        test_set = TensorImageDataset(_as_nchw_uint8(test.data), torch.as_tensor(np.asarray(test.targets)))
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


class MNISTDataModule(_TorchvisionArrays):
    """MNIST (60k / 10k, 28x28 grey)."""

    name = "mnist"
    dataset_cls = torchvision.datasets.MNIST
    mean = (0.1307,)
    std = (0.3081,)
    num_classes = 10


class FashionMNISTDataModule(_TorchvisionArrays):
    """Fashion-MNIST (60k / 10k, 28x28 grey). The Debian package ``dataset-fashion-mnist``
    installs the raw files under ``/usr/share/datasets/fashion-mnist/``; torchvision reads
    them from ``<data_dir>/FashionMNIST/raw/``."""

    name = "fashion_mnist"
    dataset_cls = torchvision.datasets.FashionMNIST
    mean = (0.2860,)
    std = (0.3530,)
    num_classes = 10


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
            return TensorImageDataset(_as_nchw_uint8(ds.data), torch.as_tensor(ds.labels))

        labeled = arrays("train")
        test = arrays("test")
        pretrain = labeled if self.pretrain_split == "train" else arrays("train+unlabeled")
        return Splits(pretrain=pretrain, eval_train=labeled, val=test, test=test)


# -- arrays: scikit-learn digits, .npz files, synthetic ----------------------------------------


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.float() / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


class _ArrayDataModule(ImageDataModule):
    """Train/test arrays held in memory; mean and std computed on the training images."""

    def arrays(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def make_splits(self) -> Splits:
        train_x, train_y, test_x, test_y = self.arrays()
        self.mean, self.std = _stats(train_x)
        self.num_classes = int(max(train_y.max(), test_y.max())) + 1
        train, test = TensorImageDataset(train_x, train_y), TensorImageDataset(test_x, test_y)
        return Splits(pretrain=train, eval_train=train, val=test, test=test)


class DigitsDataModule(_ArrayDataModule):
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), shipped with
    scikit-learn: the offline default of the demo. A fixed stratified split keeps
    ``test_fraction`` of the images for validation/test; ``image_size`` > 8 upsamples
    (bilinear) once at load time."""

    name = "digits"
    mean = (0.5,)
    std = (0.5,)

    def __init__(self, image_size: int = 8, test_fraction: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        self.image_size = image_size
        self.test_fraction = test_fraction

    def arrays(self):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
        if self.image_size != 8:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
        x = (x * 255).round().clamp(0, 255).to(torch.uint8)
        y = torch.as_tensor(digits.target)
        idx_train, idx_test = train_test_split(
            np.arange(len(y)), test_size=self.test_fraction, random_state=self.seed, stratify=y.numpy()
        )
        return x[idx_train], y[idx_train], x[idx_test], y[idx_test]


class NpzImageDataModule(_ArrayDataModule):
    """Images from an ``.npz`` file with keys ``train_images``, ``train_labels``,
    ``test_images``, ``test_labels`` (uint8 images, NCHW or NHWC), e.g. the CIFAR-10 subset
    in ``shared/data/cifar10_subset.npz``."""

    name = "npz"
    keys = ("train_images", "train_labels", "test_images", "test_labels")

    def __init__(self, path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = path

    def arrays(self):
        path = Path(self.path)
        if not path.is_file():
            raise DatasetNotFoundError(
                f"No .npz file at '{path.resolve()}'. Set data.init_args.path to a file with keys "
                f"{', '.join(self.keys)}."
            )
        try:
            with np.load(path) as npz:
                missing = [k for k in self.keys if k not in npz.files]
                if missing:
                    raise ValueError(f"it lacks the keys {missing} (found {npz.files})")
                train_x, train_y, test_x, test_y = (npz[k] for k in self.keys)
            train_x, test_x = _as_nchw_uint8(train_x), _as_nchw_uint8(test_x)
        except Exception as err:  # zipfile.BadZipFile, pickle refusals, shape errors
            raise ValueError(
                f"Could not read images from '{path}': {err}. Expected an .npz with uint8 arrays "
                f"{', '.join(self.keys)} (images (N, C, H, W) or (N, H, W, C))."
            ) from err
        if len(train_x) != len(train_y) or len(test_x) != len(test_y):
            raise ValueError(f"'{path}': image and label counts differ")
        return train_x, torch.as_tensor(train_y).long(), test_x, torch.as_tensor(test_y).long()


class SyntheticImageDataModule(_ArrayDataModule):
    """Random class-structured uint8 images, for benchmarks and smoke tests: each class is a
    fixed random pattern plus per-image noise."""

    name = "synthetic"

    def __init__(self, num_train: int = 512, num_test: int = 128, image_size: int = 32,
                 channels: int = 3, classes: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_train, self.num_test = num_train, num_test
        self.image_size, self.channels, self.classes = image_size, channels, classes

    def arrays(self):
        g = torch.Generator().manual_seed(self.seed)
        shape = (self.classes, self.channels, self.image_size, self.image_size)
        templates = torch.rand(shape, generator=g) * 255

        def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            y = torch.arange(n) % self.classes
            noise = torch.randn((n, *shape[1:]), generator=g) * 40
            return (templates[y] + noise).clamp(0, 255).to(torch.uint8), y

        return (*draw(self.num_train), *draw(self.num_test))

    def make_splits(self) -> Splits:
        splits = super().make_splits()
        self.num_classes = self.classes
        return splits


# -- image folders ----------------------------------------------------------------------------


def _path_only(path: str) -> str:
    return path  # decoding happens in _FolderImages, with a clear error per file


class _FolderImages(Dataset):
    """Decodes image files to uint8 ``(C, size, size)``: shorter side resized to ``size`` then
    centre-cropped, so batches can be stacked and augmented on the device."""

    def __init__(self, folder: torchvision.datasets.DatasetFolder, size: int) -> None:
        self.folder, self.size = folder, size
        self.resize = T.Compose([
            T.Resize(size, antialias=True),
            T.CenterCrop(size),
        ])

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.folder.samples[i]
        try:
            image = torchvision.io.decode_image(path, mode=torchvision.io.ImageReadMode.RGB)
        except Exception as err:
            raise ValueError(f"Could not decode image '{path}': {err}. Remove or replace the file.") from err
        return self.resize(image), label


class ImageFolderDataModule(ImageDataModule):
    """Any folder tree ``<data_dir>/<train_dir>/<class>/*.jpg`` and ``<data_dir>/<val_dir>/<class>/*``
    (ImageNet, ImageNet-100, Imagenette ...).

    Training images are decoded at ``load_size`` (shorter side, then centre crop) on the CPU
    and cropped/augmented to the views' crop size on the device; evaluation images are
    resized to ``load_size`` and centre-cropped to ``image_size`` (256 -> 224 as usual).
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
            raise DatasetNotFoundError(
                f"No image folder at '{path.resolve()}'. ImageFolderDataModule expects "
                f"<data_dir>/{self.train_dir}/<class>/<images> and <data_dir>/{self.val_dir}/<class>/<images>; "
                "Imagenette, for example, is at https://github.com/fastai/imagenette."
            )
        return torchvision.datasets.ImageFolder(str(path), loader=_path_only)

    def make_splits(self) -> Splits:
        train, val = self._folder(self.train_dir), self._folder(self.val_dir)
        self.num_classes = len(train.classes)
        pretrain = _FolderImages(train, self.load_size)
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
