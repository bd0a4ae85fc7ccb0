"""Face-editing data: photos with random masks, sketches, colour maps and noise, for SC-FEGAN-style training.

Every sample is a dict of float tensors (SC-FEGAN, arXiv 1902.06838, section 3.1; channels as in the
released demo, run-youngjoo/SC-FEGAN ``demo.py``)::

    image  (3, S, S) in [-1, 1]   the photo, resized (shorter side) and centre-cropped to S
    mask   (1, S, S) in {0, 1}    1 = erased (``lit_digest.gan.masks.random_mask``)
    sketch (1, S, S) in {0, 1}    1 = line: edges of the photo (Canny, or HED with its weights)
    colour (3, S, S) in [-1, 1]   the photo's colour map (``lit_digest.gan.colour.colour_map``)
    noise  (1, S, S) in {0, 1}    the demo's noise channel: a pixel is 1 where N(0, 1) >= 1

The whole photo's sketch and colour map are given; the model keeps them inside the mask only, as a
user draws there. Sketches and colour maps depend on the photo alone: they are computed once per
photo in each worker (and stored under ``cache_dir`` when set, to be reused by later runs); masks and
noise are drawn per sample from a generator seeded by (seed, epoch, index), so a run and its resumed
continuation see the same data, and validation sees the same masks at every epoch.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, Dataset, Sampler

from lit_digest.core.download import missing_data_error
from lit_digest.core.images import check_images, unreadable_image
from lit_digest.core.lightning import LightningDataModule
from lit_digest.core.public_data import ATT_FACES_URLS
from lit_digest.gan.colour import colour_map
from lit_digest.gan.masks import MaskConfig, random_mask
from lit_digest.gan.sketch import canny_edges, load_hed

__all__ = ["IMAGE_SUFFIXES", "list_images", "load_face", "FaceConditions", "FaceEditingDataset", "EpochSampler",
           "FaceFolderDataModule", "SyntheticFaceDataModule", "synthetic_face"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".webp", ".tif", ".tiff")
CELEBA_HQ_URL = "https://github.com/switchablenorms/CelebAMask-HQ"


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), in natural order (``s2/10.pgm`` after ``s2/9.pgm``)."""
    return sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                  key=_natural_key)


def load_face(path: str | os.PathLike, size: int, mode: str = "RGB") -> torch.Tensor:
    """A ``(3, size, size)`` uint8 tensor (``mode`` "RGB"; grey images get three equal channels) or ``(1, size,
    size)`` ("L"): the image's shorter side resized to ``size`` (bicubic), then centre-cropped."""
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
    except (OSError, SyntaxError, ValueError) as err:  # not an image, or cut short
        raise unreadable_image(path, err) from err
    scale = size / min(img.size)
    w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
    img = img.resize((w, h), Image.BICUBIC)
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    pixels = np.array(img)
    return torch.from_numpy(pixels.reshape(*pixels.shape[:2], -1)).permute(2, 0, 1).contiguous()


def synthetic_face(index: int, size: int, seed: int = 0) -> torch.Tensor:
    """A drawn face (background, hair, skin, eyes, brows, nose, mouth at random sizes and colours), for tests
    and smoke runs without data: ``(3, size, size)`` uint8."""
    rng = np.random.default_rng((seed, index))
    s = size

    def colour(base, spread=40):
        return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in base)

    img = Image.new("RGB", (s, s), colour((90, 110, 140), 60))
    draw = ImageDraw.Draw(img)
    cx, cy = s * rng.uniform(0.45, 0.55), s * rng.uniform(0.5, 0.58)
    rx, ry = s * rng.uniform(0.26, 0.34), s * rng.uniform(0.34, 0.42)
    draw.ellipse((cx - rx * 1.1, cy - ry * 1.15, cx + rx * 1.1, cy + ry * 0.3), fill=colour((70, 50, 30)))  # hair
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour((225, 180, 150), 25))  # skin
    eye_y, eye_dx, eye_r = cy - ry * 0.2, rx * 0.42, max(1.0, s * 0.035)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        draw.ellipse((ex - 2 * eye_r, eye_y - eye_r, ex + 2 * eye_r, eye_y + eye_r), fill=(245, 245, 245))
        draw.ellipse((ex - eye_r, eye_y - eye_r, ex + eye_r, eye_y + eye_r), fill=colour((60, 80, 110)))
        draw.line((ex - 2.5 * eye_r, eye_y - 2.6 * eye_r, ex + 2.5 * eye_r, eye_y - 3 * eye_r),
                  fill=colour((60, 40, 25)), width=max(1, round(s / 48)))
    draw.line((cx, eye_y + eye_r, cx - rx * 0.1, cy + ry * 0.25), fill=colour((180, 130, 110)), width=max(1, s // 64))
    mouth_y, mouth_w = cy + ry * 0.5, rx * rng.uniform(0.3, 0.5)
    draw.ellipse((cx - mouth_w, mouth_y - s * 0.025, cx + mouth_w, mouth_y + s * 0.025), fill=colour((170, 60, 70)))
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()


class FaceConditions:
    """Sketch and colour map of a photo: ``__call__(uint8 (3, S, S)) -> (sketch (1, S, S), colour uint8 (3, S, S))``.

    Args:
        sketch: ``"canny"`` (no weights) or ``"hed"`` (``hed_weights`` needed; SC-FEGAN's choice).
        hed_weights: a HED state_dict (sniklaus/pytorch-hed's ``network-bsds500.pytorch`` works).
        hed_threshold: HED probability above which a pixel is a line.
        canny_sigma: Gaussian smoothing of the Canny detector, in pixels at 256 px (scaled with the image).
        colour_clusters, bilateral_iterations: of ``colour_map`` (SC-FEGAN: 20 bilateral filters).
    """

    def __init__(self, sketch: Literal["canny", "hed"] = "canny", hed_weights: str | None = None,
                 hed_threshold: float = 0.5, canny_sigma: float = 2.0, colour_clusters: int = 8,
                 bilateral_iterations: int = 20) -> None:
        if sketch not in ("canny", "hed"):
            raise ValueError(f"sketch must be 'canny' or 'hed', got {sketch!r}")
        if sketch == "hed" and not hed_weights:
            raise ValueError("sketch 'hed' needs data.init_args.hed_weights (a path to the HED weights); "
                             "or use sketch 'canny', which needs none")
        self.sketch, self.hed_threshold, self.canny_sigma = sketch, hed_threshold, canny_sigma
        self.colour_clusters, self.bilateral_iterations = colour_clusters, bilateral_iterations
        self.hed = load_hed(hed_weights) if sketch == "hed" else None

    def key(self) -> str:
        """What the cached results depend on (besides the photo)."""
        parts = (self.sketch, self.hed_threshold, self.canny_sigma, self.colour_clusters, self.bilateral_iterations)
        return "-".join(map(str, parts))

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.float()[None] / 255  # (1, 3, S, S)
        if self.hed is not None:
            sketch = (self.hed(x) > self.hed_threshold).float()[0]
        else:
            sketch = canny_edges(x, sigma=self.canny_sigma * image.shape[-1] / 256)[0]
        colour, _ = colour_map(x[0], self.colour_clusters, self.bilateral_iterations)
        return sketch.to(torch.uint8), (colour * 255).round().to(torch.uint8)


class FaceEditingDataset(Dataset):
    """Samples of the module docstring from a list of photos (paths, or ints: synthetic faces).

    An item key is an index, or ``(index, epoch)`` from ``EpochSampler``; with ``fixed_epoch`` set (the
    validation set) the epoch is ignored.
    """

    def __init__(self, sources: Sequence[str | os.PathLike | int], image_size: int, conditions: FaceConditions,
                 masks: MaskConfig = MaskConfig(), seed: int = 0, fixed_epoch: int | None = None,
                 cache_dir: str | os.PathLike | None = None) -> None:
        self.sources, self.size, self.conditions, self.masks = list(sources), image_size, conditions, masks
        self.seed, self.fixed_epoch = seed, fixed_epoch
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._memory: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.sources)

    def _cache_file(self, source: str | os.PathLike) -> Path:
        digest = hashlib.sha1(f"{Path(source).resolve()}|{self.size}|{self.conditions.key()}".encode()).hexdigest()
        return self.cache_dir / f"{digest[:20]}.pt"

    def photo(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image, sketch, colour) as uint8 tensors, computed once per photo."""
        if index in self._memory:
            return self._memory[index]
        source = self.sources[index]
        cache = self._cache_file(source) if self.cache_dir is not None and not isinstance(source, int) else None
        if cache is not None and cache.is_file():
            item = tuple(torch.load(cache, weights_only=True))
        else:
            image = synthetic_face(source, self.size, self.seed) if isinstance(source, int) else \
                load_face(source, self.size)
            item = (image, *self.conditions(image))
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                torch.save(list(item), cache.with_suffix(f".{os.getpid()}.part"))
                cache.with_suffix(f".{os.getpid()}.part").replace(cache)
        self._memory[index] = item
        return item

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        if self.fixed_epoch is not None:
            epoch = self.fixed_epoch
        image, sketch, colour = self.photo(index)
        rng = np.random.default_rng((self.seed, epoch + 1, index))  # + 1: numpy seeds must be >= 0
        mask = torch.from_numpy(random_mask(rng, self.size, self.size, self.masks))[None]
        noise = torch.from_numpy((rng.standard_normal((1, self.size, self.size)) >= 1).astype(np.float32))
        return {"image": image.float() / 127.5 - 1, "mask": mask, "sketch": sketch.float(),
                "colour": colour.float() / 127.5 - 1, "noise": noise}


class EpochSampler(Sampler):
    """Yields ``(index, epoch)`` keys, shuffled by a generator seeded with (seed, epoch): the order and the random
    masks of an epoch are the same in a resumed run. Lightning calls ``set_epoch`` before every epoch."""

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0) -> None:
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.arange(self.size)
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch))
        return iter([(int(i), self.epoch) for i in order])


class _FaceEditingData(LightningDataModule):
    """Loaders shared by the face DataModules; subclasses give ``_sources() -> (train, val)``."""

    def __init__(self, image_size: int, batch_size: int, num_workers: int, masks: MaskConfig, seed: int,
                 sketch: Literal["canny", "hed"] = "canny", hed_weights: str | None = None,
                 colour_clusters: int = 8, bilateral_iterations: int = 20, cache_dir: str | None = None) -> None:
        super().__init__()
        if image_size < 8 or batch_size < 1 or num_workers < 0:
            raise ValueError("need image_size >= 8, batch_size >= 1 and num_workers >= 0")
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.masks, self.seed, self.cache_dir = masks, seed, cache_dir
        self.condition_args = dict(sketch=sketch, hed_weights=hed_weights, colour_clusters=colour_clusters,
                                   bilateral_iterations=bilateral_iterations)
        self.train_set: FaceEditingDataset | None = None
        self.val_set: FaceEditingDataset | None = None

    def _sources(self) -> tuple[list, list]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, val = self._sources()
        conditions = FaceConditions(**self.condition_args)
        common = dict(image_size=self.image_size, conditions=conditions, masks=self.masks, cache_dir=self.cache_dir)
        self.train_set = FaceEditingDataset(train, seed=self.seed, **common)
        self.val_set = FaceEditingDataset(val, seed=self.seed + 1, fixed_epoch=0, **common)

    def _loader(self, dataset: FaceEditingDataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, sampler=EpochSampler(len(dataset), shuffle, self.seed),
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          drop_last=shuffle and len(dataset) >= self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The held-out faces with their fixed masks, sketches and colour maps, in order (plain indices: the
        ``ImageWriter`` names each edited face after its index)."""
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)


class FaceFolderDataModule(_FaceEditingData):
    """Face photos from a folder, for SC-FEGAN training (module docstring for the samples).

    Layouts: ``root/train/**`` with ``root/val/**`` (or ``root/test/**``), e.g. StarGAN v2's CelebA-HQ; or
    any folder of photos (CelebAMask-HQ's ``CelebA-HQ-img/0.jpg .. 29999.jpg``, the AT&T faces'
    ``s1/1.pgm ..``), of which the last ``num_val`` in natural order are held out (SC-FEGAN: 29,000
    CelebA-HQ photos for training, 1,000 for testing; on the AT&T faces the last 40 are the 4 last people).

    Args:
        root: the folder.
        image_size: side of the square training images (SC-FEGAN: 512).
        num_val: held-out photos when the folder has no train/val split.
        batch_size, num_workers: of the loaders.
        masks: how masks are drawn (``MaskConfig``).
        sketch, hed_weights: the edge detector (``FaceConditions``).
        colour_clusters, bilateral_iterations: of the colour maps.
        cache_dir: store each photo's resized image, sketch and colour map here (worth it at 512 px: a colour
            map takes seconds there); None: compute them in the workers, once per photo per run.
        seed: of the masks, noise and shuffling.
    """

    def __init__(self, root: str = "data/celeba_hq", image_size: int = 512, num_val: int = 1000, batch_size: int = 8,
                 num_workers: int = 4, masks: MaskConfig = MaskConfig(), sketch: Literal["canny", "hed"] = "canny",
                 hed_weights: str | None = None, colour_clusters: int = 8, bilateral_iterations: int = 20,
                 cache_dir: str | None = None, seed: int = 0) -> None:
        super().__init__(image_size, batch_size, num_workers, masks, seed, sketch, hed_weights, colour_clusters,
                         bilateral_iterations, cache_dir)
        self.root, self.num_val = Path(root), num_val

    def _missing(self, reason: str = ""):
        if "att" in self.root.name.lower():  # the AT&T faces (configs/scfegan/att_faces.yaml: data/att_faces)
            return missing_data_error("The AT&T faces", self.root, url=ATT_FACES_URLS[0], reason=reason,
                                      fix="run `python -m lit_digest get att_faces` (it builds data/att_faces), or "
                                          "set data.init_args.root to a folder holding s1..s40")
        return missing_data_error("Face photos", self.root, url=CELEBA_HQ_URL, reason=reason,
                                  fix="set data.init_args.root to a folder of face photos (CelebA-HQ: "
                                      "CelebAMask-HQ/CelebA-HQ-img; the AT&T faces: `python -m lit_digest get "
                                      "att_faces` builds data/att_faces)")

    def _sources(self) -> tuple[list, list]:
        if not self.root.is_dir():
            raise self._missing()
        held_out = next((self.root / name for name in ("val", "test") if (self.root / name).is_dir()), None)
        if (self.root / "train").is_dir() and held_out is not None:
            train, val = list_images(self.root / "train"), list_images(held_out)
        else:
            images = list_images(self.root)
            if len(images) <= self.num_val:
                if not images:
                    raise self._missing(reason=f"no {', '.join(IMAGE_SUFFIXES)} file in it")
                raise ValueError(f"{self.root} has {len(images)} photos, not more than num_val={self.num_val}: "
                                 "lower data.init_args.num_val")
            train, val = images[: len(images) - self.num_val], images[len(images) - self.num_val:]
        if not train or not val:
            raise self._missing(reason="its train or val folder holds no image")
        check_images([*train, *val])
        return [str(p) for p in train], [str(p) for p in val]


class SyntheticFaceDataModule(_FaceEditingData):
    """Drawn faces (``synthetic_face``) with the same masks, sketches and colour maps: smoke runs and tests,
    offline and without data."""

    def __init__(self, num_train: int = 64, num_val: int = 16, image_size: int = 64, batch_size: int = 8,
                 num_workers: int = 0, masks: MaskConfig = MaskConfig(), sketch: Literal["canny", "hed"] = "canny",
                 hed_weights: str | None = None, colour_clusters: int = 8, bilateral_iterations: int = 20,
                 cache_dir: str | None = None, seed: int = 0) -> None:
        super().__init__(image_size, batch_size, num_workers, masks, seed, sketch, hed_weights, colour_clusters,
                         bilateral_iterations, cache_dir)
        if num_train < 1 or num_val < 1:
            raise ValueError("need num_train >= 1 and num_val >= 1")
        self.num_train, self.num_val = num_train, num_val

    def _sources(self) -> tuple[list, list]:
        return list(range(self.num_train)), list(range(self.num_train, self.num_train + self.num_val))

