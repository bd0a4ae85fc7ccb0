"""MNIST and Fashion-MNIST from their IDX files, unpacked or gzipped, in torchvision's layout or a plain folder.

Accepted, in this order: ``<data_dir>/<Name>/raw/<file>`` (torchvision's layout) and ``<data_dir>/<file>``
(e.g. ``/usr/share/datasets/fashion-mnist``, where Debian's ``dataset-fashion-mnist`` puts the ``.gz``
files), each file as ``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz`` (and ``train-labels-
idx1-ubyte``, ``t10k-*``). With ``download`` the files go to torchvision's layout.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torchvision

from lit_digest.core.download import missing_data_error
from lit_digest.ssl.data import ImageDataModule, Splits, TensorImageDataset

__all__ = ["MNISTDataModule", "FashionMNISTDataModule", "read_idx"]

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (``.gz`` or not) as a uint8 array: (N, H, W) images or (N,) labels."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"Could not read '{path}': {err}. Expected an IDX file (MNIST format), unpacked or .gz.") \
            from err
    if len(data) < 8 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"'{path}' is not an IDX file of bytes (MNIST format): bad header {data[:4]!r}.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"'{path}' is truncated: {array.size} bytes for the shape {shape} in its header.")
    return array.reshape(shape)


class _IdxDataModule(ImageDataModule):
    """MNIST-format data sets (28x28 grey, 60k / 10k)."""

    folder = "MNIST"
    dataset_cls: type = torchvision.datasets.MNIST
    label = "MNIST"
    num_classes = 10

    def __init__(self, data_dir: str = "data", download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir, self.download = data_dir, download

    def _find(self, name: str) -> Path | None:
        for folder in (Path(self.data_dir) / self.folder / "raw", Path(self.data_dir)):
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
        return None

    def _missing(self) -> list[str]:
        return [name for pair in FILES.values() for name in pair if self._find(name) is None]

    def prepare_data(self) -> None:
        if self._missing() and self.download:
            try:
                for train in (True, False):
                    self.dataset_cls(root=self.data_dir, train=train, download=True)
            except (RuntimeError, OSError, ValueError) as err:
                raise self._error(f"the download failed: {type(err).__name__}: {err}") from err

    def _error(self, reason: str):
        mirror = self.dataset_cls.mirrors[0] + self.dataset_cls.resources[0][0]
        return missing_data_error(
            self.label, self.data_dir, url=f"{mirror} (and the other three files beside it)", reason=reason,
            fix=f"put {', '.join(n for pair in FILES.values() for n in pair)} (unpacked or .gz) in "
            f"<data_dir>/{self.folder}/raw/ or in data_dir itself, or set data.init_args.data_dir to such a folder"
            + (" (on Debian: `apt install dataset-fashion-mnist`, then data_dir: /usr/share/datasets/fashion-mnist; "
               "anywhere: `python -m lit_digest get fashion_mnist`, then data_dir: data)"
               if self.folder == "FashionMNIST" else ""),
        )

    def make_splits(self) -> Splits:
        missing = self._missing()
        if missing:
            raise self._error(f"missing {', '.join(missing)}")
        sets = {}
        for split, (images, labels) in FILES.items():
            x = torch.from_numpy(read_idx(self._find(images)).copy()).unsqueeze(1)  # (N, 1, 28, 28)
            y = torch.from_numpy(read_idx(self._find(labels)).astype(np.int64))
            sets[split] = TensorImageDataset(x, y)
        return Splits(pretrain=sets["train"], eval_train=sets["train"], val=sets["test"], test=sets["test"])


class MNISTDataModule(_IdxDataModule):
    """MNIST (60k / 10k, 28x28 grey)."""

    name = "mnist"
    mean = (0.1307,)
    std = (0.3081,)


class FashionMNISTDataModule(_IdxDataModule):
    """Fashion-MNIST (60k / 10k, 28x28 grey), e.g. from Debian's ``dataset-fashion-mnist``:
    ``data_dir: /usr/share/datasets/fashion-mnist`` reads its ``.gz`` files where they are."""

    name = "fashion_mnist"
    folder = "FashionMNIST"
    dataset_cls = torchvision.datasets.FashionMNIST
    label = "Fashion-MNIST"
    mean = (0.2860,)
    std = (0.3530,)
