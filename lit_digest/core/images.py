"""Image files: the PNGs ``predict`` writes (one per image, in a folder of the run, then one line), and a clear
error naming a file that is no image.

A method whose natural output is images (edited faces, generated samples) returns them from ``predict_step`` as
``{"images": (B, C, H, W) floats in [0, 1]}`` (C = 1 or 3), optionally with ``"index"`` (B,) naming each
image (the sample's index in its data set; default: the dataloader's batch indices); ``ImageWriter`` in the
config's callbacks writes ``<run folder>/<folder>/<index>.png`` and, at the end, ``announce(folder, count,
"images")``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule, Trainer, pl
from lit_digest.core.outputs import announce

__all__ = ["ImageWriter", "save_png", "unreadable_image", "check_images"]


def unreadable_image(path: str | Path, err: BaseException) -> ValueError:
    """The error for an image file that cannot be read: the file, the reason and the fix."""
    return ValueError(f"'{path}' is not a readable image ({type(err).__name__}: {' '.join(str(err).split())}): "
                      "remove or replace the file")


def check_images(paths: Iterable[str | Path]) -> None:
    """Open the header of every file (no pixels are decoded: milliseconds per thousand files) and raise
    ``unreadable_image`` for the first one that is no image, so that a corrupt file stops a run at its start
    rather than in a DataLoader worker mid-epoch. (A file cut short after its header is found when read.)"""
    for path in paths:
        try:
            with Image.open(path):
                pass
        except (OSError, SyntaxError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
            raise unreadable_image(path, err) from err


def save_png(path: str | Path, image: torch.Tensor) -> Path:
    """Write ``image`` (C, H, W) in [0, 1], C = 1 or 3, as an 8-bit grey or RGB PNG."""
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"save_png takes a (1 or 3, H, W) image, got {tuple(image.shape)}")
    pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    array = pixels[0].numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)
    return path


class ImageWriter(pl.callbacks.BasePredictionWriter):
    """Writes the ``images`` of every ``predict_step`` as ``<folder>/<index>.png`` (``<dataloader>_<index>`` with
    several predict dataloaders) and announces the folder and the count when ``predict`` ends.

    Args:
        folder: where the PNGs go: a path relative to the run folder (default ``images``), or absolute.
    """

    def __init__(self, folder: str = "images") -> None:
        super().__init__(write_interval="batch")
        self.folder = folder
        self.count = 0
        self.path: Path | None = None

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.count = 0
        self.path = run_dir(trainer) / self.folder

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        if not isinstance(prediction, dict) or "images" not in prediction:
            raise TypeError(f"ImageWriter writes the 'images' of a predict_step's dict; {type(pl_module).__name__}"
                            f" returned {type(prediction).__name__}: use the method's own output writer")
        images = prediction["images"]
        index = prediction.get("index", batch_indices)
        index = list(range(len(images))) if index is None else [int(i) for i in index]
        several = len(trainer.num_predict_batches) > 1
        for i, image in zip(index, images):
            save_png(self.path / (f"{dataloader_idx}_{i}.png" if several else f"{i}.png"), image)
        self.count += len(images)

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.count and trainer.is_global_zero:
            announce(self.path, self.count, "images")
