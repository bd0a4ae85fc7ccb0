"""Images held in memory: scikit-learn's digits (the offline demo), ``.npz`` files, synthetic patterns."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lit_digest.core.download import missing_data_error
from lit_digest.ssl.data import ImageDataModule, Splits, TensorImageDataset, as_nchw_uint8

__all__ = ["DigitsDataModule", "NpzImageDataModule", "SyntheticImageDataModule"]

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
    ``test_images``, ``test_labels`` (uint8 images, NCHW or NHWC), e.g. the CIFAR-10 subset of the README's
    numbers, which ``python -m lit_digest get cifar10_subset`` builds in ``data/cifar10_subset.npz``."""

    name = "npz"
    keys = ("train_images", "train_labels", "test_images", "test_labels")

    def __init__(self, path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = path

    def arrays(self):
        path = Path(self.path)
        if not path.is_file():
            raise missing_data_error(
                ".npz file", path, fix=f"set data.init_args.path to a file with keys {', '.join(self.keys)} (the "
                "CIFAR-10 subset of the README: `python -m lit_digest get cifar10_subset` builds "
                "data/cifar10_subset.npz)")
        if not zipfile.is_zipfile(path):  # np.load would try to unpickle it and advise allow_pickle
            raise ValueError(
                f"'{path}' is not an .npz archive (it is not a zip file): expected one written by numpy.savez with "
                f"uint8 arrays {', '.join(self.keys)}; set data.init_args.path to such a file."
            )
        try:
            with np.load(path) as npz:
                missing = [k for k in self.keys if k not in npz.files]
                if missing:
                    raise ValueError(f"it lacks the keys {missing} (found {npz.files})")
                train_x, train_y, test_x, test_y = (npz[k] for k in self.keys)
            train_x, test_x = as_nchw_uint8(train_x), as_nchw_uint8(test_x)
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
