"""Where views come from: procedural scenes rendered here, NeRF's Blender synthetic layout and LLFF captures.

- ``ProceduralSceneDataModule``: offline; cameras around a procedural scene (``lit_digest.nerf.scenes``) with
  exact images and depth. The test views are consecutive poses ``test_step_deg`` apart on one circle, so that
  adjacent stylised views can be compared by warping (``lit_digest.nerf.consistency``).
- ``BlenderDataModule``: ``transforms_{train,val,test}.json`` + RGBA PNGs (bmild/nerf ``load_blender.py``: near 2,
  far 6, alpha onto white, every ``testskip``-th val / test frame, the orbit at 30 degrees and radius 4).
- ``LLFFDataModule``: ``poses_bounds.npy`` + ``images[_<factor>]/`` (bmild/nerf ``load_llff.py``: poses
  re-ordered to OpenGL axes, scaled so that the nearest bound is 1 / 0.75, re-centred on the average pose,
  every ``llffhold``-th image held out, the spiral path, rays in NDC).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lit_digest.core.download import missing_data_error
from lit_digest.nerf.data import SceneDataModule, Views
from lit_digest.nerf.images import read_rgb
from lit_digest.nerf.rendering import orbit_poses, spiral_poses
from lit_digest.nerf.scenes import CAMERA_RADIUS, camera_on_sphere, render_views, sample_scene

__all__ = ["ProceduralSceneDataModule", "BlenderDataModule", "LLFFDataModule", "load_blender", "load_llff"]

BLENDER_URL = "https://drive.google.com/drive/folders/128yBriW1IG_3NJ5Rp7APSTZsJqdJdfc1 (nerf_synthetic.zip)"
LLFF_URL = "https://drive.google.com/drive/folders/128yBriW1IG_3NJ5Rp7APSTZsJqdJdfc1 (nerf_llff_data.zip)"


class ProceduralSceneDataModule(SceneDataModule):
    """Procedural scene ``seed`` seen by ``num_train`` cameras at random azimuths and elevations (10-60 degrees),
    ``num_val`` more at random, and ``num_test`` consecutive ones on a circle at 30 degrees; ``image_size``
    px, 60 degree field of view. Other options: ``SceneDataModule``.

    Args:
        sky: the sky at infinity (for ``RadianceField(unbounded=True)``); False: a white background.
        supersample: rays per pixel side for the colours.
    """

    def __init__(self, seed: int = 0, num_train: int = 30, num_val: int = 2, num_test: int = 8, image_size: int = 32,
                 test_step_deg: float = 8.0, sky: bool = True, supersample: int = 2, **options) -> None:
        super().__init__(**options)
        if num_train < 1 or num_val < 1 or num_test < 1 or image_size < 4:
            raise ValueError("num_train, num_val and num_test must be >= 1 and image_size >= 4")
        self.seed, self.num_train, self.num_val, self.num_test = seed, num_train, num_val, num_test
        self.image_size, self.test_step_deg, self.sky, self.supersample = image_size, test_step_deg, sky, supersample

    def load_views(self) -> Views:
        g = torch.Generator().manual_seed(self.seed + 1)
        n_random = self.num_train + self.num_val
        azimuth, elevation = 360 * torch.rand(n_random, generator=g), 10 + 50 * torch.rand(n_random, generator=g)
        poses = [camera_on_sphere(a, e) for a, e in zip(azimuth.tolist(), elevation.tolist())]
        poses += [camera_on_sphere(15 + self.test_step_deg * k, 30.0) for k in range(self.num_test)]
        poses = torch.stack(poses)
        focal = 0.5 * self.image_size / math.tan(math.radians(30))
        images, depth = render_views(sample_scene(self.seed, self.sky), poses, self.image_size, focal,
                                     self.supersample)
        n = self.num_train
        splits = {"train": list(range(n)), "val": list(range(n, n_random)),
                  "test": list(range(n_random, n_random + self.num_test))}
        path = orbit_poses(self.path_frames, CAMERA_RADIUS, 30.0)
        return Views(images, poses, focal, near=1e-4 if self.sky else 0.2, far=2.0, splits=splits, path=path,
                     depth=depth)


def _read_transforms(root: Path, split: str) -> dict:
    path = root / f"transforms_{split}.json"
    if not path.is_file():
        raise missing_data_error(f"Blender scene file transforms_{split}.json", path, url=BLENDER_URL,
                                 fix="set data.init_args.root to a scene folder (e.g. nerf_synthetic/lego) holding "
                                     "transforms_train.json, transforms_val.json and transforms_test.json")
    try:
        meta = json.loads(path.read_text())
        frames, angle = meta["frames"], float(meta["camera_angle_x"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"'{path}' is not a Blender transforms file (needs camera_angle_x and frames: {err})") from err
    return {"frames": frames, "angle": angle, "path": path}


def load_blender(root: str | Path, downscale: int = 1, white_background: bool = True, testskip: int = 8,
                 path_frames: int = 40) -> Views:
    """A Blender synthetic scene as ``Views`` (bmild/nerf ``load_blender_data``)."""
    root = Path(root)
    images, poses, splits, angle = [], [], {}, 0.0
    for split in ("train", "val", "test"):
        meta = _read_transforms(root, split)
        angle = meta["angle"]
        frames = meta["frames"][:: 1 if split == "train" else max(1, testskip)]
        splits[split] = list(range(len(images), len(images) + len(frames)))
        for k, frame in enumerate(frames):
            matrix = np.asarray(frame.get("transform_matrix"), dtype=np.float32)
            if matrix.shape != (4, 4):
                raise ValueError(f"{meta['path'].name}, frame {k}: transform_matrix has shape {matrix.shape}, "
                                 "expected 4 x 4 (camera to world)")
            poses.append(torch.from_numpy(matrix[:3]))
            rgba = read_rgba(root / f"{frame['file_path']}.png")
            images.append(rgba)
    stack = torch.stack(images)  # (N, 4, H, W)
    if downscale > 1:
        stack = F.interpolate(stack, scale_factor=1 / downscale, mode="area")
    rgb, alpha = stack[:, :3], stack[:, 3:]
    rgb = rgb * alpha + (1 - alpha) if white_background else rgb
    focal = 0.5 * stack.shape[-1] / math.tan(0.5 * angle)
    path = orbit_poses(path_frames, 4.0, 30.0)
    return Views(rgb.permute(0, 2, 3, 1).contiguous(), torch.stack(poses), focal, near=2.0, far=6.0, splits=splits,
                 path=path)


def read_rgba(path: Path) -> torch.Tensor:
    """A PNG as ``(4, H, W)`` in [0, 1] (opaque when it has no alpha)."""
    import imageio.v3 as iio

    rgb = read_rgb(path)
    array = np.asarray(iio.imread(path))
    alpha = (torch.from_numpy(array[..., 3].astype(np.float32) / 255.0)[None] if array.ndim == 3 and
             array.shape[-1] == 4 else torch.ones_like(rgb[:1]))
    return torch.cat([rgb, alpha])


class BlenderDataModule(SceneDataModule):
    """A scene of NeRF's synthetic set (``nerf_synthetic/<scene>``). ``downscale`` 2 is bmild/nerf ``half_res``.
    Other options: ``SceneDataModule``."""

    def __init__(self, root: str = "data/nerf_synthetic/lego", downscale: int = 2, white_background: bool = True,
                 testskip: int = 8, **options) -> None:
        super().__init__(**options)
        self.root, self.downscale, self.white_background, self.testskip = root, downscale, white_background, testskip

    def load_views(self) -> Views:
        return load_blender(self.root, self.downscale, self.white_background, self.testskip, self.path_frames)


def load_llff(root: str | Path, factor: int = 8, llffhold: int = 8, path_frames: int = 120) -> Views:
    """An LLFF capture as ``Views`` in NDC (bmild/nerf ``load_llff_data`` with ``recenter``, ``bd_factor=0.75``)."""
    root = Path(root)
    file = root / "poses_bounds.npy"
    if not file.is_file():
        raise missing_data_error("LLFF poses_bounds.npy", file, url=LLFF_URL,
                                 fix="set data.init_args.root to a capture folder (e.g. nerf_llff_data/fern) holding "
                                     "poses_bounds.npy and images/")
    raw = np.load(file)
    if raw.ndim != 2 or raw.shape[1] != 17:
        raise ValueError(f"'{file}' holds an array of shape {raw.shape}; expected (N, 17): per image a 3 x 5 pose "
                         "(rotation, translation, [height, width, focal]) and the near / far bounds")
    folder = root / f"images_{factor}" if (root / f"images_{factor}").is_dir() else root / "images"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if len(files) != raw.shape[0]:
        raise ValueError(f"'{folder}' has {len(files)} images but poses_bounds.npy has {raw.shape[0]} poses")
    images = torch.stack([read_rgb(p) for p in files])  # (N, 3, H, W)
    shrink = factor if folder.name == "images" else 1
    if shrink > 1:
        images = F.interpolate(images, scale_factor=1 / shrink, mode="area")
    poses = torch.from_numpy(raw[:, :15].reshape(-1, 3, 5)).float()
    bounds = torch.from_numpy(raw[:, 15:]).float()
    focal = float(poses[0, 2, 4]) * images.shape[-2] / float(poses[0, 0, 4])  # the focal at this height
    poses = torch.stack([poses[:, :, 1], -poses[:, :, 0], poses[:, :, 2], poses[:, :, 3]], -1)  # LLFF -> OpenGL
    scale = 1.0 / (float(bounds.min()) * 0.75)
    poses[:, :, 3] *= scale
    bounds = bounds * scale
    poses = _recenter(poses)
    held = list(range(0, len(files), llffhold)) if llffhold > 0 else [len(files) - 1]
    splits = {"train": [i for i in range(len(files)) if i not in held], "val": held, "test": held}
    path = spiral_poses(poses, float(bounds.min()), float(bounds.max()), path_frames)
    return Views(images.permute(0, 2, 3, 1).contiguous(), poses, focal, near=0.0, far=1.0, splits=splits,
                 path=path, ndc=True, ndc_near=1.0)


def _recenter(poses: torch.Tensor) -> torch.Tensor:
    """Poses in the frame of their average pose (bmild/nerf ``recenter_poses``)."""
    centre = poses[:, :, 3].mean(0)
    forward = F.normalize(poses[:, :, 2].sum(0), dim=0)
    up = poses[:, :, 1].sum(0)
    right = F.normalize(torch.linalg.cross(up, forward, dim=0), dim=0)
    average = torch.eye(4)
    average[:3] = torch.stack([right, torch.linalg.cross(forward, right, dim=0), forward, centre], -1)
    full = torch.cat([poses, torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(len(poses), 1, 4)], 1)
    return (torch.linalg.inv(average) @ full)[:, :3]


class LLFFDataModule(SceneDataModule):
    """A forward-facing capture in LLFF's layout (``nerf_llff_data/<scene>``); ``factor`` 8 as bmild/nerf
    ``config_fern.txt`` (4 in ``paper_configs``). Other options: ``SceneDataModule``."""

    def __init__(self, root: str = "data/nerf_llff_data/fern", factor: int = 8, llffhold: int = 8, **options) -> None:
        super().__init__(**options)
        self.root, self.factor, self.llffhold = root, factor, llffhold

    def load_views(self) -> Views:
        return load_llff(self.root, self.factor, self.llffhold, self.path_frames)
