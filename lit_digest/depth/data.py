"""RGB-D DataModules: procedural scenes with exact depth, real RGB-D layouts (Middlebury 2014, iBims-1), and
a folder of images to predict.

Every batch of ``fit`` / ``validate`` / ``test`` is ``(image, depth)``: ``image`` (B, 3, H, W) float in
[0, 1], ``depth`` (B, 1, H, W) float (metres or the layout's unit; 0 or non-finite where unknown).
``predict`` batches are ``(image, name)`` with one image each (sizes differ), from ``predict_dir``, or without it
the held-out test images (named ``test/<index>`` for procedural scenes, after their files for real ones).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lit_digest.core.download import missing_data_error
from lit_digest.core.images import check_images
from lit_digest.core.lightning import LightningDataModule
from lit_digest.depth.io import IMAGE_SUFFIXES, read_depth_png16, read_image, read_pfm
from lit_digest.depth.scenes import render_scene

__all__ = ["ProceduralRGBDDataModule", "RGBDFolderDataModule", "ImageFolderDataset", "render_scenes"]


def render_scenes(seed: int, count: int, size: int, antialias: int = 2,
                  cache_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scenes ``0 .. count-1`` of ``seed``: images (N, 3, S, S) uint8 and depths (N, 1, S, S), from the cache
    file ``cache_dir/procedural-s<seed>-<size>px-aa<antialias>-<count>.pt`` when present (written after
    rendering)."""
    path = Path(cache_dir) / f"procedural-s{seed}-{size}px-aa{antialias}-{count}.pt" if cache_dir else None
    if path is not None and path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return saved["image"], saved["depth"]
    start = time.monotonic()
    images, depths = zip(*(render_scene(seed, i, size, antialias) for i in range(count)))
    if count >= 64:
        print(f"lit_digest: rendered {count} scenes of {size} px in {time.monotonic() - start:.0f} s",
              file=sys.stderr)
    image, depth = torch.stack(images), torch.stack(depths)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        torch.save({"image": image, "depth": depth}, part)
        part.replace(path)
    return image, depth


class _AsFloat(Dataset):
    """uint8 images -> float [0, 1], depths as they are."""

    def __init__(self, images: torch.Tensor, depths: torch.Tensor) -> None:
        self.data = TensorDataset(images, depths)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, depth = self.data[i]
        return image.float() / 255.0, depth


class _Named(Dataset):
    """The images of an ``(image, depth)`` data set as ``(image, name)``: what ``predict`` reads."""

    def __init__(self, data: Dataset, names: list[str]) -> None:
        self.data, self.names = data, names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return self.data[i][0], self.names[i]


class ImageFolderDataset(Dataset):
    """Every image under ``root`` (recursively, sorted): ``(image (3, H, W) in [0, 1], relative name)``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise missing_data_error("Image folder to predict", self.root, fix="set data.init_args.predict_dir "
                                     "to a folder of .png / .jpg images")
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise missing_data_error("Images (.png, .jpg, ...)", self.root, reason="the folder has none",
                                     fix="set data.init_args.predict_dir to a folder of images")
        check_images(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        path = self.files[i]
        return read_image(path), path.relative_to(self.root).with_suffix("").as_posix()


class _DepthDataModule(LightningDataModule):
    def __init__(self, batch_size: int, num_workers: int, predict_dir: str | None) -> None:
        super().__init__()
        self.batch_size, self.num_workers, self.predict_dir = batch_size, num_workers, predict_dir
        self.splits: dict[str, Dataset] = {}

    def _loader(self, split: str, shuffle: bool = False, batch_size: int | None = None) -> DataLoader:
        return DataLoader(self.splits[split], batch_size=batch_size or self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, drop_last=shuffle and len(self.splits[split]) > self.batch_size,
                          persistent_workers=self.num_workers > 0)

    def held_out_images(self) -> Dataset:
        """``(image, name)`` of the test split: what ``predict`` reads without ``predict_dir``."""
        raise NotImplementedError

    def predict_dataloader(self) -> DataLoader:
        """One image per batch (sizes differ): every image under ``predict_dir``, else the test images."""
        images = ImageFolderDataset(self.predict_dir) if self.predict_dir is not None else self.held_out_images()
        return DataLoader(images, batch_size=1, num_workers=self.num_workers)


class ProceduralRGBDDataModule(_DepthDataModule):
    """Procedural rooms with exact depth (``lit_digest.depth.scenes``): ``num_train`` / ``num_val`` /
    ``num_test`` scenes of seeds ``seed``, ``seed + 1``, ``seed + 2`` (never the same scene twice),
    rendered once at ``image_size`` px and cached under ``cache_dir`` (``None``: in memory only).

    The defaults render 24 small scenes in a few seconds, to try a method on a CPU; the configs and the measured
    experiment render hundreds at 192 px (``configs/depth/*/procedural.yaml``: 1024 / 16-32 / 64, cached in
    ``data/depth``), about 0.4 s each on a CPU core.

    Args:
        image_size: the native (evaluation) resolution of every scene.
        antialias: colour rays per pixel and side.
    """

    def __init__(self, num_train: int = 16, num_val: int = 4, num_test: int = 4, image_size: int = 96,
                 seed: int = 0, antialias: int = 2, batch_size: int = 8, num_workers: int = 0,
                 cache_dir: str | None = None, predict_dir: str | None = None) -> None:
        super().__init__(batch_size, num_workers, predict_dir)
        if min(num_train, num_val, num_test) < 1 or image_size < 16:
            raise ValueError("ProceduralRGBDDataModule needs at least one scene per split and image_size >= 16")
        self.counts = {"train": num_train, "val": num_val, "test": num_test}
        self.image_size, self.seed, self.antialias, self.cache_dir = image_size, seed, antialias, cache_dir

    def _render(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        seed = self.seed + ("train", "val", "test").index(split)
        return render_scenes(seed, self.counts[split], self.image_size, self.antialias, self.cache_dir)

    def prepare_data(self) -> None:
        if self.cache_dir is not None:  # render once, on one process
            for split in self.counts:
                self._render(split)

    def setup(self, stage: str) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, ())
        for split in wanted:
            if split not in self.splits:
                self.splits[split] = _AsFloat(*self._render(split))

    def held_out_images(self) -> Dataset:
        test = self.splits.get("test") or _AsFloat(*self._render("test"))
        return _Named(test, [f"test/{i:04d}" for i in range(len(test))])

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


class _RealRGBD(Dataset):
    def __init__(self, pairs: list[tuple[Path, Path]], read_depth, size: int | None) -> None:
        self.pairs, self.read_depth, self.size = pairs, read_depth, size

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, depth_path = self.pairs[i]
        image, depth = read_image(image_path), self.read_depth(depth_path)
        if image.shape[-2:] != depth.shape[-2:]:
            raise ValueError(f"{image_path} is {tuple(image.shape[-2:])} but its depth {depth_path} is "
                             f"{tuple(depth.shape[-2:])}")
        depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.zeros_like(depth))
        if self.size is not None:  # the longer side to ``size``; depth by nearest neighbour (no mixed edges)
            h, w = image.shape[-2:]
            shape = (max(1, round(h * self.size / max(h, w))), max(1, round(w * self.size / max(h, w))))
            image = torch.nn.functional.interpolate(image[None], size=shape, mode="area")[0]
            depth = torch.nn.functional.interpolate(depth[None], size=shape, mode="nearest")[0]
        return image, depth


def _middlebury_depth(path: Path) -> torch.Tensor:
    """Depth in mm from ``disp0.pfm`` and ``calib.txt``: ``baseline * f / (d + doffs)`` (Middlebury 2014)."""
    calib = {}
    for line in (path.parent / "calib.txt").read_text().splitlines():
        key, eq, value = line.partition("=")
        if eq:
            calib[key.strip()] = value.strip()
    focal = float(calib["cam0"].strip("[]").split()[0])  # cam0=[f 0 cx; 0 f cy; 0 0 1]
    disparity = read_pfm(path)[:1]
    return float(calib["baseline"]) * focal / (disparity + float(calib["doffs"]))


class RGBDFolderDataModule(_DepthDataModule):
    """Real RGB-D sets in their published layouts (validation and test of a merge network; ``fit`` also
    trains on them when a checkpointed estimator and ``reference: estimate`` are used, as the paper does):

    - ``middlebury2014``: ``root/<scene>/im0.png``, ``disp0.pfm`` and ``calib.txt`` ("10 evaluation training
      sets with GT" and "13 additional datasets with GT" of https://vision.middlebury.edu/stereo/data/scenes2014/);
      depth = ``baseline * f / (disparity + doffs)`` in mm.
    - ``ibims1``: ``root/rgb/<name>.png`` and ``root/depth/<name>.png`` (16-bit, ``depth_scale`` per unit:
      iBims-1 core raw stores ``d / 50 m * 65535``; https://www.asg.ed.tum.de/lmf/ibims1/).

    The first ``num_val`` scenes (sorted by name) are the validation and test split, the rest the training
    split. ``image_size`` resizes the longer side (``None``: native, batch size 1).
    """

    def __init__(self, root: str, layout: Literal["middlebury2014", "ibims1"] = "middlebury2014",
                 num_val: int = 2, image_size: int | None = 768, depth_scale: float = 50.0 / 65535.0,
                 batch_size: int = 1, num_workers: int = 0, predict_dir: str | None = None) -> None:
        super().__init__(batch_size, num_workers, predict_dir)
        self.root, self.layout, self.num_val = Path(root), layout, num_val
        self.image_size, self.depth_scale = image_size, depth_scale

    def _pairs(self) -> tuple[list[tuple[Path, Path]], object]:
        fix = f"set data.init_args.root to the folder of the {self.layout} layout (see docs/depth.md)"
        if self.layout == "middlebury2014":
            pairs = sorted((d / "im0.png", d / "disp0.pfm") for d in self.root.glob("*") if (d / "disp0.pfm").is_file())
            url, reader = "https://vision.middlebury.edu/stereo/data/scenes2014/", _middlebury_depth
        elif self.layout == "ibims1":
            pairs = sorted((p, self.root / "depth" / p.name) for p in (self.root / "rgb").glob("*.png")
                           if (self.root / "depth" / p.name).is_file())
            url = "https://www.asg.ed.tum.de/lmf/ibims1/"

            def reader(path: Path) -> torch.Tensor:
                return read_depth_png16(path) * self.depth_scale
        else:
            raise ValueError(f"layout must be 'middlebury2014' or 'ibims1', got {self.layout!r}")
        if not self.root.is_dir() or not pairs:
            raise missing_data_error(f"{self.layout} RGB-D pairs", self.root, url=url, fix=fix,
                                     reason="no image with its depth there" if self.root.is_dir() else "")
        return pairs, reader

    def setup(self, stage: str) -> None:
        pairs, reader = self._pairs()
        check_images(image for image, _ in pairs)
        held_out = pairs[: self.num_val]
        train = pairs[self.num_val:] or held_out
        self.splits = {"train": _RealRGBD(train, reader, self.image_size),
                       "val": _RealRGBD(held_out, reader, self.image_size),
                       "test": _RealRGBD(held_out, reader, self.image_size)}

    def held_out_images(self) -> Dataset:
        if "test" not in self.splits:
            self.setup("predict")
        test = self.splits["test"]
        return _Named(test, [image.relative_to(self.root).with_suffix("").as_posix() for image, _ in test.pairs])

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
