"""Images with captions for the VQGAN and the CLIP: procedural scenes rendered here, or a folder of the user's.

Batches are dicts: ``image`` ``(B, 3, H, W)`` float in [-1, 1], ``caption`` (a list of strings), ``index`` ``(B,)``;
scenes add ``attributes`` ``(B, 6)`` (``lit_digest.text2image.scenes.ATTRIBUTES``' columns).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lit_digest.core.download import missing_data_error
from lit_digest.core.lightning import LightningDataModule
from lit_digest.text2image.scenes import scene_batch

__all__ = ["CaptionedImages", "SceneDataModule", "CaptionedFolderDataModule", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class CaptionedImages(Dataset):
    """uint8 images ``(N, 3, H, W)`` with captions (and attributes) as the dicts of the module docstring."""

    def __init__(self, images: torch.Tensor, captions: list[str], attributes: np.ndarray | None = None) -> None:
        self.images, self.captions = images, captions
        self.attributes = None if attributes is None else torch.as_tensor(attributes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        item = {"image": self.images[i].float() / 127.5 - 1, "caption": self.captions[i], "index": i}
        if self.attributes is not None:
            item["attributes"] = self.attributes[i]
        return item


class _ImageDataModule(LightningDataModule):
    def __init__(self, batch_size: int, num_workers: int) -> None:
        super().__init__()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.train_set: CaptionedImages | None = None
        self.val_set: CaptionedImages | None = None

    def _loader(self, data: CaptionedImages, shuffle: bool) -> DataLoader:
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          drop_last=shuffle and len(data) >= self.batch_size,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)


class SceneDataModule(_ImageDataModule):
    """Procedural scenes with captions (``lit_digest.text2image.scenes``), rendered in memory when set up.

    Args:
        num_train, num_val: scenes in each split (drawn with different seeds: no scene is shared).
        size: image side in pixels (32-64).
        seed: the data's seed; the same seed gives the same images and captions.
        batch_size, num_workers: of the loaders.
    """

    def __init__(self, num_train: int = 2048, num_val: int = 256, size: int = 32, seed: int = 0,
                 batch_size: int = 32, num_workers: int = 0) -> None:
        super().__init__(batch_size, num_workers)
        if num_train < 1 or num_val < 1 or size < 8:
            raise ValueError(f"SceneDataModule needs num_train, num_val >= 1 and size >= 8, got {num_train}, "
                             f"{num_val}, {size}")
        self.num_train, self.num_val, self.size, self.seed = num_train, num_val, size, seed

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            images, attributes, captions = scene_batch(self.num_train, self.size, self.seed)
            self.train_set = CaptionedImages(images, captions, attributes)
            images, attributes, captions = scene_batch(self.num_val, self.size, self.seed + 100_003)
            self.val_set = CaptionedImages(images, captions, attributes)


class CaptionedFolderDataModule(_ImageDataModule):
    """The images under ``root`` (any depth), each with its caption in a ``.txt`` file of the same name beside it
    (the layout of img2dataset and most caption sets); centre-cropped and resized to ``size``. The last
    ``val_fraction`` of the sorted files is held out.

    Args:
        root: the folder.
        size: image side after the resize.
        captions: read the ``.txt`` captions (the CLIP needs them; the VQGAN does not: False gives empty captions).
        val_fraction: held-out share (at least one image).
        batch_size, num_workers: of the loaders.
    """

    def __init__(self, root: str = "data/images", size: int = 64, captions: bool = True, val_fraction: float = 0.05,
                 batch_size: int = 64, num_workers: int = 0) -> None:
        super().__init__(batch_size, num_workers)
        if not 0 < val_fraction < 1:
            raise ValueError(f"CaptionedFolderDataModule val_fraction must be in (0, 1), got {val_fraction}")
        self.root, self.size, self.captions, self.val_fraction = Path(root), size, captions, val_fraction

    def files(self) -> list[Path]:
        if not self.root.is_dir():
            raise missing_data_error("the image folder", self.root, fix="set data.init_args.root to a folder of "
                                     "images (with a caption .txt beside each for the CLIP)")
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < 2:
            raise missing_data_error("at least two images", self.root, fix="put images (.png/.jpg) in the folder")
        return files

    def _read(self, files: list[Path]) -> CaptionedImages:
        from PIL import Image

        images, captions = [], []
        for path in files:
            with Image.open(path) as img:
                img = img.convert("RGB")
                side = min(img.size)
                left, top = (img.width - side) // 2, (img.height - side) // 2
                img = img.crop((left, top, left + side, top + side)).resize((self.size, self.size), Image.BICUBIC)
                images.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
            text = ""
            if self.captions:
                caption = path.with_suffix(".txt")
                if not caption.is_file():
                    raise FileNotFoundError(f"no caption for '{path}': expected '{caption}' (one line of text); "
                                            "set data.init_args.captions false for images without captions")
                text = caption.read_text(encoding="utf-8").strip()
            captions.append(text)
        return CaptionedImages(torch.stack(images), captions)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            files = self.files()
            n_val = max(1, round(self.val_fraction * len(files)))
            self.train_set, self.val_set = self._read(files[:-n_val]), self._read(files[-n_val:])


def write_scene_folder(root: str | os.PathLike, n: int, size: int = 32, seed: int = 0) -> Path:
    """``n`` scenes as PNGs with their captions as ``.txt`` files under ``root`` (a folder for the folder configs)."""
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    images, _, captions = scene_batch(n, size, seed)
    for i, (image, text) in enumerate(zip(images, captions)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / f"{i:05d}.png")
        (root / f"{i:05d}.txt").write_text(text + "\n", encoding="utf-8")
    return root
