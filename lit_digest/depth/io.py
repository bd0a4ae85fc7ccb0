"""Depth files: 16-bit PNG (written as the official ``write_depth(..., bits=2)``), PFM (Middlebury), images.

PNG through Pillow, which writes and reads 16-bit greyscale (mode ``I;16``); torchvision's
``encode_png`` takes uint8 only.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lit_digest.core.images import unreadable_image

__all__ = ["write_depth_png16", "read_depth_png16", "read_pfm", "read_image", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def write_depth_png16(path: str | Path, depth: torch.Tensor) -> Path:
    """Write ``depth`` (H, W) or (1, H, W) min-max normalised to 0..65535 as a 16-bit greyscale PNG (the official
    ``midas.utils.write_depth(path, depth, bits=2)``); a flat map is written as zeros."""
    d = depth.detach().float().cpu().reshape(depth.shape[-2:])
    lo, hi = float(d.min()), float(d.max())
    scaled = (d - lo) / (hi - lo) * 65535.0 if hi - lo > 1e-12 else torch.zeros_like(d)
    path = Path(path).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scaled.round().clamp(0, 65535).numpy().astype(np.uint16)).save(path)
    return path


def read_depth_png16(path: str | Path) -> torch.Tensor:
    """A 16-bit (or 8-bit) greyscale PNG as float32 raw values (1, H, W)."""
    with Image.open(path) as img:
        array = np.array(img)
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel depth PNG, got shape {array.shape}")
    return torch.from_numpy(array.astype(np.float32))[None]


def read_pfm(path: str | Path) -> torch.Tensor:
    """A PFM file (Middlebury disparities) as float32 (C, H, W), rows top to bottom; ``inf`` marks no data."""
    with open(path, "rb") as f:
        header = f.readline().strip()
        if header not in (b"Pf", b"PF"):
            raise ValueError(f"{path}: not a PFM file (header {header!r})")
        channels = 1 if header == b"Pf" else 3
        dims = re.findall(rb"\d+", f.readline())
        if len(dims) != 2:
            raise ValueError(f"{path}: malformed PFM size line")
        width, height = int(dims[0]), int(dims[1])
        scale = float(f.readline().strip())
        data = np.fromfile(f, dtype="<f4" if scale < 0 else ">f4")
    if data.size != width * height * channels:
        raise ValueError(f"{path}: {data.size} values for a {width}x{height}x{channels} PFM")
    array = np.flipud(data.reshape(height, width, channels)).astype(np.float32)  # PFM stores bottom row first
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def read_image(path: str | Path) -> torch.Tensor:
    """An RGB image as float32 (3, H, W) in [0, 1] (greyscale and alpha converted)."""
    try:
        with Image.open(path) as img:
            array = np.array(img.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError) as err:  # not an image, or cut short
        raise unreadable_image(path, err) from err
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
