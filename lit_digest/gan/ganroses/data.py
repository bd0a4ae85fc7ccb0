"""Unpaired two-domain image data for GANs N' Roses, with the paper's augmentation batches.

A training batch is a dict of float tensors in [-1, 1], for each domain ``X`` in ``A, B``::

    X        (N, C, S, S)  the images to translate: N augmentations of ONE image (batch_mode "augmentations",
                           the official setting) or augmentations of N different images ("shuffled")
    X_group  (N,)          which source image each row of X is (all equal, or 0..N-1)
    X_real   (N, C, S, S)  augmentations of N different images: the discriminator's real samples and the
                           reference styles

as the official ``train.py`` builds them on the GPU (``aug_A = aug(ori_A)``, ``A = aug(ori_A[[random]]
.expand_as(ori_A))``). Validation batches are ``{"A": (n, C, S, S), "B": ...}`` pairs of test images;
``predict`` has one loader per direction, ``{"image", "index"}`` of the test images of A, then of B.

Every batch is drawn from a generator seeded by (seed, epoch, batch): a resumed run sees the same data.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from lit_digest.core.download import missing_data_error
from lit_digest.core.lightning import LightningDataModule
from lit_digest.gan.faces import IMAGE_SUFFIXES, EpochSampler, list_images, load_face, synthetic_face

__all__ = ["Augmentation", "random_views", "ImageSet", "TrainBatches", "TestPairs", "UnpairedFolderDataModule",
           "PhotosToDrawingsDataModule", "image_channels"]

SELFIE2ANIME_URL = "https://github.com/taki0112/UGATIT (selfie2anime, the dataset link in its README)"
ATT_FACES_URL = "https://www.cl.cam.ac.uk/research/dtg/attarchive/facedatabase.html"
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class Augmentation:
    """The official augmentation (``train.py``: ``K.RandomAffine(degrees=(-20, 20), scale=(0.8, 1.2),
    translate=(0.1, 0.1), shear=0.15)``, ``Resize(256 + 30)``, ``RandomCrop(256)``, ``RandomHorizontalFlip()``),
    at any image size: the resize-and-crop is a zoom by ``1 + crop_margin`` and a shift within the margin.
    Kornia reads ``shear`` in degrees, so 0.15 is a barely visible shear; kept as the official value. Pixels
    brought in from outside are 0 (mid-grey in [-1, 1]), as kornia's zero padding of the normalised images."""

    degrees: float = 20.0
    scale: tuple[float, float] = (0.8, 1.2)
    translate: float = 0.1
    shear: float = 0.15
    crop_margin: float = 30 / 256
    flip: bool = True


def random_views(images: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """One random view of each image: ``(N, C, S, S) -> (N, C, S, S)``, one bilinear resampling of the composed
    affine map (flip, crop shift, zoom, rotation, shear, scale, translation)."""
    n = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = torch.deg2rad(uniform(-aug.degrees, aug.degrees))
    shear = torch.deg2rad(uniform(-aug.shear, aug.shear))
    scale = uniform(*aug.scale)
    shift = torch.stack([uniform(-2 * aug.translate, 2 * aug.translate) for _ in range(2)], 1)  # (N, 2), in [-1, 1]
    zoom = 1 + aug.crop_margin
    crop = torch.stack([uniform(-aug.crop_margin / zoom, aug.crop_margin / zoom) for _ in range(2)], 1)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if aug.flip else torch.ones(n)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotate = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)  # (N, 2, 2): R(-angle)
    unshear = torch.eye(2).repeat(n, 1, 1)
    unshear[:, 0, 1] = -torch.tan(shear)
    inverse = unshear @ rotate / scale[:, None, None]  # output -> input, in the affine warp's own frame
    linear = inverse @ torch.diag_embed(torch.stack([flip, torch.ones(n)], 1)) / zoom
    offset = (inverse @ (crop - shift)[:, :, None])[:, :, 0]
    theta = torch.cat([linear, offset[:, :, None]], 2).to(images.dtype)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def image_channels(path: str | os.PathLike) -> int:
    """1 for a grey image file, 3 for a colour one (read from the header only)."""
    with Image.open(path) as img:
        return 1 if img.mode in GREY_MODES else 3


class ImageSet:
    """One split of one domain: image files (paths) or drawn faces (``lit_digest.gan.faces.synthetic_face``,
    ints), as ``(C, S, S)`` floats in [-1, 1] at ``size`` (shorter side resized, centre crop).

    Args:
        items: paths, or indices of drawn faces.
        size: side of the square images.
        channels: 3 (grey images repeated to RGB), 1 (colour images to grey), None (each file as it is).
        drawn_seed: the drawn faces' seed; drawn_grey: draw them grey.
        cache: keep the loaded images in memory (per process).
    """

    def __init__(self, items: list, size: int, channels: int | None = 3, drawn_seed: int = 0,
                 drawn_grey: bool = False, cache: bool = True) -> None:
        self.items, self.size, self.channels = list(items), size, channels
        self.drawn_seed, self.drawn_grey, self.cache = drawn_seed, drawn_grey, cache
        self._memory: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.items)

    def native_channels(self) -> set[int]:
        """The channel counts of the items as they are (1: grey, 3: colour)."""
        return {1 if self.drawn_grey else 3} if self.is_drawn else {image_channels(p) for p in self.items}

    @property
    def is_drawn(self) -> bool:
        return bool(self.items) and isinstance(self.items[0], (int, np.integer))

    def __getitem__(self, index: int) -> torch.Tensor:
        if index in self._memory:
            return self._memory[index]
        item = self.items[index]
        if self.is_drawn:
            pixels = synthetic_face(int(item), self.size, self.drawn_seed)
            if self.drawn_grey:
                pixels = torch.from_numpy(np.array(Image.fromarray(pixels.permute(1, 2, 0).numpy()).convert("L")))[None]
        else:
            mode = {3: "RGB", 1: "L"}.get(self.channels) or ("L" if image_channels(item) == 1 else "RGB")
            pixels = load_face(item, self.size, mode)
        if self.channels == 3 and pixels.shape[0] == 1:
            pixels = pixels.expand(3, -1, -1)
        elif self.channels == 1 and pixels.shape[0] == 3:
            pixels = torch.from_numpy(np.array(Image.fromarray(pixels.permute(1, 2, 0).numpy()).convert("L")))[None]
        image = pixels.float() / 127.5 - 1
        if self.cache:
            self._memory[index] = image
        return image


def _seeded(*key: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0]))


class TrainBatches(Dataset):
    """Training batches (module docstring): item ``(batch, epoch)`` is a whole batch, drawn from a generator
    seeded by (seed, epoch, batch). An epoch has ``max(len(A), len(B)) // batch_size`` batches."""

    def __init__(self, a: ImageSet, b: ImageSet, batch_size: int, batch_mode: Literal["augmentations", "shuffled"],
                 aug: Augmentation, seed: int = 0) -> None:
        self.a, self.b, self.batch_size, self.batch_mode, self.aug, self.seed = a, b, batch_size, batch_mode, aug, seed

    def __len__(self) -> int:
        return max(1, max(len(self.a), len(self.b)) // self.batch_size)

    def _domain(self, images: ImageSet, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.batch_size
        picked = torch.randperm(len(images), generator=g)[:n]
        if len(picked) < n:  # fewer images than a batch: repeat them
            picked = picked.repeat(math.ceil(n / len(picked)))[:n]
        batch = torch.stack([images[int(i)] for i in picked])  # (N, C, S, S)
        real = random_views(batch, self.aug, g)
        if self.batch_mode == "augmentations":
            one = int(torch.randint(n, (1,), generator=g))
            views = random_views(batch[one: one + 1].expand_as(batch), self.aug, g)
            groups = picked[one].repeat(n)
        else:
            views, groups = random_views(batch, self.aug, g), picked
        return views, groups, real

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        g = _seeded(self.seed, epoch, index)
        out = {}
        for name, images in (("A", self.a), ("B", self.b)):
            out[name], out[f"{name}_group"], out[f"{name}_real"] = self._domain(images, g)
        return out


class TestPairs(Dataset):
    """Test images of both domains side by side, ``{"A": (C, S, S), "B": ...}``; the shorter domain cycles."""

    def __init__(self, a: ImageSet, b: ImageSet) -> None:
        self.a, self.b = a, b

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"A": self.a[i % len(self.a)], "B": self.b[i % len(self.b)]}


class _Images(Dataset):
    def __init__(self, images: ImageSet) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "index": torch.tensor(i)}


class _TwoDomainData(LightningDataModule):
    """Loaders shared by the two-domain DataModules; subclasses give ``_splits() -> {trainA, trainB, testA,
    testB: ImageSet}`` and ``_names() -> (name of A, name of B)`` for messages."""

    def __init__(self, image_size: int, batch_size: int, batch_mode: Literal["augmentations", "shuffled"],
                 channels: int | None, augmentation: Augmentation, num_workers: int, cache_images: bool,
                 seed: int) -> None:
        super().__init__()
        if image_size < 4 or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 4, got {image_size}")
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (the style-consistency loss compares codes across a batch), "
                             f"got {batch_size}")
        if batch_mode not in ("augmentations", "shuffled"):
            raise ValueError(f"batch_mode must be 'augmentations' or 'shuffled', got {batch_mode!r}")
        if channels not in (1, 3, None):
            raise ValueError(f"channels must be 3 (RGB), 1 (grey) or null (as the files are), got {channels!r}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.image_size, self.batch_size, self.batch_mode, self.channels = image_size, batch_size, batch_mode, channels
        self.augmentation, self.num_workers, self.seed = augmentation, num_workers, seed
        self.cache_images = cache_images
        self.splits: dict[str, ImageSet] | None = None
        self.image_channels: int | None = channels

    def _splits(self) -> dict[str, ImageSet]:
        raise NotImplementedError

    def _names(self) -> tuple[str, str]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        splits = self._splits()
        if self.channels is None:  # files as they are: both domains must agree
            found = {name: s.native_channels() for name, s in splits.items()}
            mixed = [name for name, c in found.items() if len(c) > 1]
            if mixed:
                raise ValueError(f"{mixed[0]} holds grey and colour images: set data.init_args.channels 3 (grey "
                                 "repeated to RGB) or 1 (all grey)")
            a, b = found["trainA"] | found["testA"], found["trainB"] | found["testB"]
            if a != b:
                name_a, name_b = self._names()
                raise ValueError(f"domain A ({name_a}) holds {min(a)}-channel images and domain B ({name_b}) "
                                 f"{min(b)}-channel ones: set data.init_args.channels 3 (grey repeated to RGB) or "
                                 "1 (colour made grey) so that both have the same")
            self.image_channels = min(a)
        self.splits = splits

    def _loader(self, dataset: Dataset, **kwargs) -> DataLoader:
        return DataLoader(dataset, num_workers=self.num_workers, persistent_workers=self.num_workers > 0, **kwargs)

    def train_dataloader(self) -> DataLoader:
        s = self.splits
        batches = TrainBatches(s["trainA"], s["trainB"], self.batch_size, self.batch_mode, self.augmentation,
                               self.seed)
        return self._loader(batches, batch_size=None, sampler=EpochSampler(len(batches), shuffle=False))

    def val_dataloader(self) -> DataLoader:
        return self._loader(TestPairs(self.splits["testA"], self.splits["testB"]), batch_size=self.batch_size)

    def predict_dataloader(self) -> list[DataLoader]:
        """Test images of A (translated to B), then of B (translated to A)."""
        return [self._loader(_Images(self.splits[k]), batch_size=self.batch_size) for k in ("testA", "testB")]


class UnpairedFolderDataModule(_TwoDomainData):
    """Two unpaired image folders per split, as selfie2anime ships (U-GAT-IT's layout, which the official code
    reads)::

        root/trainA/*.jpg  root/trainB/*.jpg  root/testA/*.jpg  root/testB/*.jpg

    Images of any size are resized (shorter side) and centre-cropped to ``image_size``.

    Args:
        root: the dataset folder.
        image_size: side of the square images (official: 256).
        batch_size: images per domain per batch (official ``--batch``: 4).
        batch_mode: ``"augmentations"`` (each batch N augmentations of one image per domain, the paper's) or
            ``"shuffled"`` (augmentations of N different images: no style-consistency constraint).
        channels: 3 (RGB, grey repeated), 1 (grey) or None (each file as it is: both domains must agree).
        augmentation: the views (``Augmentation``: the official ones).
        num_workers: of the loaders.
        cache_images: keep decoded images in memory (per worker): worth it for small images.
        seed: of the batches and views.
    """

    def __init__(self, root: str = "data/selfie2anime", image_size: int = 256, batch_size: int = 4,
                 batch_mode: Literal["augmentations", "shuffled"] = "augmentations", channels: int | None = 3,
                 augmentation: Augmentation = Augmentation(), num_workers: int = 4, cache_images: bool = False,
                 seed: int = 0) -> None:
        super().__init__(image_size, batch_size, batch_mode, channels, augmentation, num_workers, cache_images, seed)
        self.root = Path(root)

    def _names(self) -> tuple[str, str]:
        return str(self.root / "trainA"), str(self.root / "trainB")

    def _splits(self) -> dict[str, ImageSet]:
        fix = "set data.init_args.root to a folder holding trainA/, trainB/, testA/ and testB/"
        if not self.root.is_dir():
            raise missing_data_error("Two-domain image folder", self.root, url=SELFIE2ANIME_URL, fix=fix)
        splits = {}
        for name in ("trainA", "trainB", "testA", "testB"):
            folder = self.root / name
            if not folder.is_dir():
                raise missing_data_error(f"The {name} folder", folder, url=SELFIE2ANIME_URL, fix=fix)
            images = list_images(folder)
            if not images:
                raise missing_data_error(f"Images of {name}", folder, fix=f"put {name}'s images there",
                                         reason=f"the folder holds no {', '.join(IMAGE_SUFFIXES)} file")
            splits[name] = ImageSet([str(p) for p in images], self.image_size, self.channels,
                                    cache=self.cache_images)
        return splits


class PhotosToDrawingsDataModule(_TwoDomainData):
    """Domain A: real face photos; domain B: drawn faces (``lit_digest.gan.faces.synthetic_face``: flat-coloured
    ellipses for hair, skin, eyes, brows, nose and mouth at random sizes, positions and colours). The offline pair
    of tests and the measured command: the AT&T faces (400 grey 92x112 photos of 40 people, ``python -m
    lit_digest get att_faces``; the last ``num_test`` photos in natural order, 4 people, are held out) to as many
    drawn faces, a photo-to-drawing task as selfie2anime's.

    Args:
        photos: the photo folder (any image folder works); None: grey drawn faces of another seed stand in for the
            photos (smoke runs, no data needed).
        num_test: held-out photos; the drawn faces have as many held out.
        num_drawn: drawn faces for training (default: as many as the training photos).
        image_size, batch_size, batch_mode, channels, augmentation, num_workers, cache_images, seed: as
            ``UnpairedFolderDataModule``'s (channels 3: the grey photos become RGB, as the drawings are).
    """

    def __init__(self, photos: str | None = "data/att_faces", num_test: int = 40,
                 num_drawn: int | None = None, image_size: int = 32, batch_size: int = 8,
                 batch_mode: Literal["augmentations", "shuffled"] = "augmentations", channels: int | None = 3,
                 augmentation: Augmentation = Augmentation(), num_workers: int = 0, cache_images: bool = True,
                 seed: int = 0) -> None:
        super().__init__(image_size, batch_size, batch_mode, channels, augmentation, num_workers, cache_images, seed)
        if num_test < 1 or (num_drawn is not None and num_drawn < 1):
            raise ValueError(f"num_test and num_drawn must be >= 1, got {num_test} and {num_drawn}")
        self.photos, self.num_test, self.num_drawn = photos, num_test, num_drawn

    def _names(self) -> tuple[str, str]:
        return (self.photos or "grey drawn faces"), "drawn faces"

    def _splits(self) -> dict[str, ImageSet]:
        size, channels, cache = self.image_size, self.channels, self.cache_images
        if self.photos is None:
            n = self.num_drawn or 64
            train_a = ImageSet(list(range(n)), size, channels, drawn_seed=1, drawn_grey=True, cache=cache)
            test_a = ImageSet(list(range(n, n + self.num_test)), size, channels, drawn_seed=1,
                              drawn_grey=True, cache=cache)
        else:
            root = Path(self.photos)
            fix = ("get the AT&T faces with `python -m lit_digest get att_faces` (into data/att_faces), or set "
                   "data.init_args.photos to a folder of face photos")
            if not root.is_dir():
                raise missing_data_error("Face photos", root, url=ATT_FACES_URL, fix=fix)
            images = [str(p) for p in list_images(root)]
            if not images:
                raise missing_data_error("Face photos", root, url=ATT_FACES_URL, fix=fix,
                                         reason=f"the folder holds no {', '.join(IMAGE_SUFFIXES)} file")
            if len(images) <= self.num_test:
                raise ValueError(f"{root} has {len(images)} photos, not more than num_test={self.num_test}: lower "
                                 "data.init_args.num_test")
            cut = len(images) - self.num_test
            train_a = ImageSet(images[:cut], size, channels, cache=cache)
            test_a = ImageSet(images[cut:], size, channels, cache=cache)
            n = self.num_drawn or len(train_a)
        train_b = ImageSet(list(range(n)), size, channels, drawn_seed=0, cache=cache)
        test_b = ImageSet(list(range(n, n + self.num_test)), size, channels, drawn_seed=0, cache=cache)
        return {"trainA": train_a, "trainB": train_b, "testA": test_a, "testB": test_b}
