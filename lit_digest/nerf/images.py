"""Images in and out: style images (any file imageio reads; offline, the photos scikit-image and scikit-learn
ship), resizing and crops, PNG frames, 16-bit depth PNGs and GIFs."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["bundled_photos", "read_rgb", "fit_short_side", "center_crop", "random_resized_crop", "write_png",
           "write_depth_png16", "write_gif"]

# real photographs (and three greyscale texture photos) shipped inside the scikit-image and scikit-learn wheels
_SKIMAGE = ["astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
            "motorcycle_left.png", "retina.jpg", "rocket.jpg", "brick.png", "grass.png", "gravel.png", "camera.png"]
_SKLEARN = ["china.jpg", "flower.jpg"]


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def bundled_photos() -> list[Path]:
    """The photos of scikit-image (``skimage/data``) and scikit-learn (``sklearn/datasets/images``) present here;
    a ``FileNotFoundError`` saying how to get them when neither package is installed."""
    found = []
    for package, folder, names in (("skimage", "data", _SKIMAGE), ("sklearn", "datasets/images", _SKLEARN)):
        root = _package_dir(package)
        if root is not None:
            found += [root / folder / n for n in names if (root / folder / n).is_file()]
    if not found:
        raise FileNotFoundError("No style images given and no bundled photos found: install scikit-image and "
                                "scikit-learn (pip install 'lit-digest[nerf]'), or pass style image files "
                                "(data.init_args.style_images)")
    return found


def read_rgb(path: str | os.PathLike) -> torch.Tensor:
    """An image file as ``(3, H, W)`` float in [0, 1] (grey is repeated, alpha dropped); a file that cannot be
    read raises one ``ValueError`` / ``FileNotFoundError`` naming it."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image '{path}' not found; give an existing image file (PNG, JPEG, ...)")
    try:
        array = np.asarray(iio.imread(path))
    except Exception as err:  # imageio raises many types for a file it cannot decode
        raise ValueError(f"Could not read image '{path}' ({type(err).__name__}: {err}); give a PNG, JPEG or other "
                         "file imageio reads") from err
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4) or min(array.shape[:2]) < 2:
        raise ValueError(f"Image '{path}' has shape {array.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    scale = 65535.0 if array.dtype == np.uint16 else (255.0 if array.dtype == np.uint8 else 1.0)
    image = torch.from_numpy(array[..., :3].astype(np.float32) / scale).permute(2, 0, 1)
    if image.shape[0] == 1 or image.shape[0] == 2:
        image = image[:1].expand(3, -1, -1)
    return image.clamp(0, 1).contiguous()


def fit_short_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(C, H, W)`` area-resized (antialiased) so that its shorter side is ``size``."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    shape = (max(size, round(h * scale)), max(size, round(w * scale)))
    return F.interpolate(image[None], size=shape, mode="bilinear", antialias=True, align_corners=False)[0]


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` square of the image resized to a short side of ``size``."""
    image = fit_short_side(image, size)
    top, left = (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
    return image[:, top:top + size, left:left + size]


def random_resized_crop(image: torch.Tensor, size: int, scale: tuple[float, float] = (256 / 480, 1.0),
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """A square crop covering a uniform ``scale`` share of the image's area (at most the image), resized to
    ``size``: the official style crop (2105.13016 ``dataset/data_util.py``: ``RandomResizedCrop(256,
    scale=(256/480, 1), ratio=(1, 1))``)."""
    h, w = image.shape[-2:]
    area = float(torch.empty(()).uniform_(*scale, generator=generator)) * h * w
    side = max(1, min(h, w, round(area**0.5)))
    top = int(torch.randint(0, h - side + 1, (), generator=generator))
    left = int(torch.randint(0, w - side + 1, (), generator=generator))
    crop = image[None, :, top:top + side, left:left + side]
    return F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def _uint8(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray((image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round()
                                .astype(np.uint8))


def write_png(path: str | os.PathLike, image: torch.Tensor) -> Path:
    """``(3, H, W)`` in [0, 1] as an 8-bit PNG."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, _uint8(image))
    return path


def write_depth_png16(path: str | os.PathLike, depth: torch.Tensor, max_depth: float) -> Path:
    """Depth ``(H, W)`` as a 16-bit PNG, ``value = depth / max_depth x 65535`` (clipped): metric depth back as
    ``png / 65535 x max_depth``."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scaled = (depth.detach().float().cpu() / max_depth).clamp(0, 1) * 65535
    iio.imwrite(path, scaled.round().numpy().astype(np.uint16))
    return path


def write_gif(path: str | os.PathLike, frames: Sequence[torch.Tensor], fps: float = 10.0) -> Path:
    """Frames ``(3, H, W)`` in [0, 1] as a looping GIF, or as an MP4 when ``path`` ends in .mp4 (needs
    imageio's ffmpeg plugin: ``pip install imageio-ffmpeg``)."""
    path = Path(path)
    stack = [_uint8(f) for f in frames]
    if path.suffix.lower() == ".mp4":
        if importlib.util.find_spec("imageio_ffmpeg") is None:
            raise ValueError(f"Writing '{path}' as MP4 needs imageio's ffmpeg plugin: pip install imageio-ffmpeg, "
                             "or write a GIF")
        import imageio.v2 as iio2

        path.parent.mkdir(parents=True, exist_ok=True)
        iio2.mimwrite(path, stack, fps=fps, macro_block_size=1)
        return path
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(stack), duration=1000.0 / fps, loop=0)
    return path
