"""The image DataModule every SSL data set builds on (data sets: ``datasets.py``, in-memory arrays: ``arrays.py``).

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
(``lit_digest.ssl.KNNMonitor``); ``knn_bank_size=0`` drops it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from lit_digest.core.download import MissingDataError
from lit_digest.core.lightning import LightningDataModule
from lit_digest.ssl.views import MultiView, to_unit_float

__all__ = ["DatasetNotFoundError", "ImageDataModule", "Splits", "TensorImageDataset", "as_nchw_uint8"]

DatasetNotFoundError = MissingDataError  # the name of v0.1
CPU_KNN_BANK = 10_000


def default_workers() -> int:
    """DataLoader workers for this machine: its cores but one for the main process, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(8, cores - 1))


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
    """The CPU path: each item becomes a list of float views, drawn in the worker. Worker processes draw
    from their own generator (seeded per rank and worker by Lightning's ``seed_everything(workers=True)``);
    without workers, from ``generator`` (the DataModule's, seeded per rank)."""

    def __init__(self, dataset: Dataset, views: MultiView, generator: torch.Generator | None = None) -> None:
        self.dataset, self.views, self.generator = dataset, views, generator

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y, *sizes = self.dataset[i]
        in_worker = torch.utils.data.get_worker_info() is not None
        with torch.no_grad():
            views = self.views(x.unsqueeze(0), None if in_worker else self.generator,
                               sizes[0].unsqueeze(0) if sizes else None)
        return [v[0] for v in views], y


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
        num_workers: DataLoader workers (``None``: the machine's cores but one, at most 8).
        views: the pretraining view pipeline (``lit_digest.ssl.BYOLViews`` ...);
            ``None`` gives one un-augmented view.
        augment_on: ``"device"`` (uint8 to the accelerator, batched augmentation there) or
            ``"workers"`` (per-image augmentation in the DataLoader workers).
        knn_bank_size: how many labeled training images form the kNN bank in validation (``None``: all on
            an accelerator, at most 10 000 on a CPU; ``-1``: all; ``0``: no bank loader).
        train_subset: train on a fixed random subset (seeded by ``seed``): a number of images or a fraction.
        drop_last: drop the last incomplete pretraining batch (BatchNorm on tiny batches).
        seed: seed of the fixed random subsets.
        predict_splits: the splits ``predict`` encodes (each image once, un-augmented), e.g. ``[test, train]``
            to compute a kNN accuracy from the written features.
    """

    name = "images"
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    num_classes = 10

    def __init__(
        self,
        batch_size: int = 256,
        num_workers: int | None = None,
        views: MultiView | None = None,
        augment_on: Literal["device", "workers"] = "device",
        knn_bank_size: int | None = None,
        train_subset: int | float | None = None,
        drop_last: bool = True,
        pin_memory: bool = True,
        seed: int = 0,
        predict_splits: Sequence[Literal["test", "val", "train"]] = ("test",),
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if augment_on not in ("device", "workers"):
            raise ValueError(f"augment_on must be 'device' or 'workers', got {augment_on!r}")
        if train_subset is not None and not (train_subset >= 1 if isinstance(train_subset, int)
                                                 else 0 < train_subset <= 1):
            raise ValueError(f"train_subset must be a number of images (>= 1) or a fraction in (0, 1], "
                             f"got {train_subset}")
        self.batch_size = batch_size
        self.num_workers = default_workers() if num_workers is None else num_workers
        self.train_subset = train_subset
        self.views = views
        self.augment_on = augment_on
        self.knn_bank_size = knn_bank_size
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.seed = seed
        if not predict_splits or set(predict_splits) - {"test", "val", "train"}:
            raise ValueError(f"predict_splits must name 'test', 'val' and/or 'train', got {list(predict_splits)}")
        self.predict_split_names = list(predict_splits)
        self.splits: Splits | None = None

    # -- what subclasses provide --------------------------------------------------------
    def make_splits(self) -> Splits:
        raise NotImplementedError

    # -- Lightning hooks ------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            splits = self.make_splits()
            if self.train_subset is not None:
                pretrain = self._subset(splits.pretrain)
                eval_train = pretrain if splits.eval_train is splits.pretrain else self._subset(splits.eval_train)
                splits = Splits(pretrain=pretrain, eval_train=eval_train, val=splits.val, test=splits.test)
            self.splits = splits
            self._check_crop_size()

    def _subset(self, dataset: Dataset) -> Dataset:
        """A fixed random subset (seeded by ``seed``) of ``train_subset`` images or of that fraction."""
        n = len(dataset)  # type: ignore[arg-type]
        size = self.train_subset if isinstance(self.train_subset, int) else max(1, round(self.train_subset * n))
        if size >= n:
            return dataset
        g = torch.Generator().manual_seed(self.seed)
        return Subset(dataset, torch.randperm(n, generator=g)[:size].sort().values.tolist())

    def _check_crop_size(self) -> None:
        crop = getattr(self.views, "crop_size", None)
        if crop is None or not len(self.splits.val):  # type: ignore[union-attr, arg-type]
            return
        size = self.splits.val[0][0].shape[-1]  # type: ignore[union-attr, index]
        if crop != size:
            warnings.warn(
                f"{type(self).__name__}: the training views are {crop} px but the evaluation images are {size} px, "
                "so the encoder is evaluated at a scale it never trained on; set data.init_args.views.init_args."
                f"crop_size: {size} (or the evaluation size of the data module) unless that is what you want.",
                stacklevel=2)

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
            data = _AugmentInWorkers(data, self.views, self.generator(torch.device("cpu")))
        drop_last = self.drop_last and len(data) >= self.batch_size  # type: ignore[arg-type]
        return self._loader(data, shuffle=True, drop_last=drop_last)

    def knn_bank(self) -> Dataset:
        """The labeled training images of the kNN monitor: ``knn_bank_size`` of them (a fixed random subset;
        -1: all); by default all on an accelerator and at most ``CPU_KNN_BANK`` on a CPU, where encoding 60k
        images at every validation would take minutes."""
        bank = self._splits().eval_train
        size = self.knn_bank_size
        if size is None:
            on_cpu = self.trainer is None or self.trainer.strategy.root_device.type == "cpu"
            size = CPU_KNN_BANK if on_cpu else -1
        if 0 <= size < len(bank):  # type: ignore[arg-type]
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

    def predict_dataloader(self) -> list[DataLoader]:
        """One loader per ``predict_splits`` entry, un-augmented (``train``: the labeled training images)."""
        splits = self._splits()
        named = {"test": splits.test, "val": splits.val, "train": splits.eval_train}
        return [self._loader(named[name], shuffle=False) for name in self.predict_split_names]

    def eval_train_dataloader(self) -> DataLoader:
        """Labeled training images without augmentation (linear probes, kNN)."""
        return self._loader(self._splits().eval_train, shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y, *sizes = batch  # image folders add each training image's original size
        trainer = self.trainer
        if trainer is not None and trainer.training:
            return self.prepare_views(x, sizes[0] if sizes else None), y
        return self.prepare_images(x), y

    # -- helpers ------------------------------------------------------------------------------
    def generator(self, device: torch.device) -> torch.Generator:
        """The random stream of the views on ``device``: seeded by the run's seed (``seed_everything``,
        else ``seed``) and the process's global rank, so that DDP ranks draw different views of their
        images and a run with a fixed seed draws the same ones again."""
        rank = self.trainer.global_rank if self.trainer is not None else 0
        base = int(os.environ.get("PL_GLOBAL_SEED", self.seed))
        key = (str(device), rank, base)
        generators = self.__dict__.setdefault("_generators", {})
        if key not in generators:
            seed = (base * 1_000_003 + 7919 * (rank + 1)) % 2**63
            generators[key] = torch.Generator(device=device).manual_seed(seed)
        return generators[key]

    def prepare_views(self, x: torch.Tensor | list[torch.Tensor],
                      sizes: torch.Tensor | None = None) -> list[torch.Tensor]:
        """A training batch on the device -> normalised views: uint8 images are augmented here,
        views already drawn in the workers (a list) are only normalised. ``sizes`` (B, 2): the original
        size of each image when the batch holds them resized to a common square."""
        if isinstance(x, (list, tuple)):
            views = list(x)
        elif self.views is not None:
            views = self.views(x, self.generator(x.device), sizes)
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


def as_nchw_uint8(images: np.ndarray | torch.Tensor) -> torch.Tensor:
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
