"""Posed images for radiance fields: random-ray batches (stage 1), patches of rays with a style image (stage 2),
whole views for validation, test and ``predict``; procedural scenes offline, the Blender and LLFF layouts for
users (``lit_digest.nerf.loaders``).

Every DataModule here holds ``Views`` and differs only in where they come from. ``batches`` picks the training
batches: ``"rays"`` draws ``rays_per_batch`` rays uniformly from all training pixels (NeRF's batching across
images, bmild/nerf ``no_batching=False``); ``"patches"`` (stage 2, ``StyleNeRF``) one ``patch_size`` x
``patch_size`` grid of rays of one training view at a random stride and offset, the official sub-sampled
patch (2105.13016 ``dataset/data_util.py``: a 67 x 81 grid whose row stride is drawn from
``[rows // 2, rows]`` and column stride from ``[cols // 3, cols]``, ``rows = H // 67``), with a style image
(a random square crop of a uniform 53-100 % of its area, ``style_size`` px). With patches, validation and
``predict`` batches also carry the style images, as centre crops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader, Dataset

from lit_digest.core.lightning import LightningDataModule
from lit_digest.nerf.images import bundled_photos, center_crop, fit_short_side, random_resized_crop, read_rgb
from lit_digest.nerf.rendering import ndc_rays

__all__ = ["Views", "SceneDataModule", "pixel_rays", "view_batch"]


@dataclass
class Views:
    """Posed images of one scene. ``poses`` camera-to-world ``(N, 3, 4)`` (OpenGL axes); ``depth`` the z-buffer
    ``(N, H, W)`` where known (``inf`` where nothing is hit); ``ndc``: rays in NDC with the near plane at
    ``ndc_near`` (forward-facing LLFF scenes); ``path``: the render path's poses ``(M, 3, 4)``; ``splits``:
    view indices of ``train`` / ``val`` / ``test``."""

    images: torch.Tensor  # (N, H, W, 3) in [0, 1]
    poses: torch.Tensor  # (N, 3, 4)
    focal: float
    near: float
    far: float
    splits: dict[str, list[int]]
    path: torch.Tensor  # (M, 3, 4)
    depth: torch.Tensor | None = None  # (N, H, W)
    ndc: bool = False
    ndc_near: float = 1.0

    @property
    def size(self) -> tuple[int, int]:
        return self.images.shape[1], self.images.shape[2]


def pixel_rays(views: Views, poses: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rays through pixel centres ``(ys, xs)`` ``(R,)`` of cameras ``poses`` ``(R, 3, 4)`` (one per ray):
    ``rays_o``, ``rays_d`` ``(R, 3)``, ``near``, ``far`` ``(R,)``; in NDC for forward-facing views."""
    h, w = views.size
    dirs = torch.stack([(xs + 0.5 - w / 2) / views.focal, -(ys + 0.5 - h / 2) / views.focal,
                        -torch.ones_like(xs, dtype=torch.float32)], -1)  # (R, 3)
    rays_d = torch.einsum("rij,rj->ri", poses[:, :, :3], dirs)
    rays_o = poses[:, :, 3].clone()
    if views.ndc:
        rays_o, rays_d = ndc_rays(h, w, views.focal, views.ndc_near, rays_o, rays_d)
    ones = torch.ones(rays_o.shape[0])
    return {"rays_o": rays_o, "rays_d": rays_d, "near": views.near * ones, "far": views.far * ones}


def view_batch(views: Views, pose: torch.Tensor) -> dict[str, torch.Tensor]:
    """All rays of one camera ``(3, 4)``, row by row: ``(H W, ...)``."""
    h, w = views.size
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return pixel_rays(views, pose.expand(h * w, 3, 4), ys.reshape(-1).float(), xs.reshape(-1).float())


class _RayBatches(Dataset):
    def __init__(self, views: Views, count: int, rays: int, one_view: bool) -> None:
        self.views, self.count, self.rays, self.one_view = views, count, rays, one_view
        self.train = torch.tensor(views.splits["train"])

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        h, w = self.views.size
        if self.one_view:  # every ray of the batch from one random training view
            pixel = torch.randint(0, h * w, (self.rays,)) + int(torch.randint(0, len(self.train), ())) * h * w
        else:
            pixel = torch.randint(0, len(self.train) * h * w, (self.rays,))
        view = self.train[pixel // (h * w)]
        ys, xs = (pixel % (h * w)) // w, pixel % w
        batch = pixel_rays(self.views, self.views.poses[view], ys.float(), xs.float())
        batch["rgb"] = self.views.images[view, ys, xs]  # (R, 3)
        return batch


class _PatchBatches(Dataset):
    def __init__(self, views: Views, count: int, patch: int, styles: list[torch.Tensor], style_size: int) -> None:
        self.views, self.count, self.patch, self.styles, self.style_size = views, count, patch, styles, style_size

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        h, w = self.views.size
        p = self.patch
        view = self.views.splits["train"][int(torch.randint(0, len(self.views.splits["train"]), ()))]
        rows, cols = max(1, h // p), max(1, w // p)
        stride_y = int(torch.randint(max(1, rows // 2), rows + 1, ()))
        stride_x = int(torch.randint(max(1, cols // 3), cols + 1, ()))
        top = int(torch.randint(0, h - (p - 1) * stride_y, ()))
        left = int(torch.randint(0, w - (p - 1) * stride_x, ()))
        ys, xs = torch.meshgrid(top + stride_y * torch.arange(p), left + stride_x * torch.arange(p), indexing="ij")
        ys, xs = ys.reshape(-1), xs.reshape(-1)
        batch = pixel_rays(self.views, self.views.poses[view].expand(p * p, 3, 4), ys.float(), xs.float())
        batch["rgb"] = self.views.images[view, ys, xs]  # (P P, 3)
        style = int(torch.randint(0, len(self.styles), ()))
        batch["style"] = random_resized_crop(self.styles[style], self.style_size)  # (3, S, S)
        batch["style_index"] = torch.tensor(style)
        return batch


class _WholeViews(Dataset):
    def __init__(self, views: Views, poses: torch.Tensor, indices: Sequence[int] | None,
                 styles: torch.Tensor | None, style_names: list[str]) -> None:
        self.views, self.poses, self.indices, self.styles, self.style_names = views, poses, indices, styles, \
            style_names

    def __len__(self) -> int:
        return len(self.poses)

    def __getitem__(self, k: int) -> dict:
        batch: dict = {**view_batch(self.views, self.poses[k]), "index": torch.tensor(k)}
        batch["size"] = torch.tensor(self.views.size)
        if self.indices is not None:
            view = self.indices[k]
            batch["image"] = self.views.images[view]  # (H, W, 3)
            if self.views.depth is not None:
                batch["true_depth"] = self.views.depth[view]  # (H, W)
        if self.styles is not None:
            batch["styles"], batch["style_names"] = self.styles, self.style_names  # (K, 3, S, S)
        return batch


class SceneDataModule(LightningDataModule):
    """The batches of one scene's ``Views`` (``load_views`` of a subclass).

    Args:
        batches: ``"rays"`` (stage 1, ``NeRF``) or ``"patches"`` (stage 2, ``StyleNeRF``).
        rays_per_batch: rays of a stage-1 batch (NeRF: 1024 Blender, 4096 LLFF; NeRF++ and the stylisation
            paper: 1024).
        one_view_per_batch: draw each stage-1 batch from one random training view (bmild/nerf ``no_batching``,
            its Blender setting; NeRF++ does the same) instead of from all training pixels (its LLFF setting).
        patch_size: side of a stage-2 patch of rays (official: 67 x 81).
        batches_per_epoch: training batches between validations.
        style_images: style image files (any format imageio reads); None: the photos scikit-image and
            scikit-learn ship. Read only with patches.
        style_size: side of the style crops (official: 256).
        eval_styles: how many of the style images validation and ``predict`` render (the first ones).
        predict_views: ``"path"`` (the scene's camera path: an orbit, or LLFF's spiral) or ``"test"``.
        path_frames: poses of the camera path.
    """

    def __init__(self, batches: Literal["rays", "patches"] = "rays", rays_per_batch: int = 1024,
                 one_view_per_batch: bool = False, patch_size: int = 24,
                 batches_per_epoch: int = 100, style_images: list[str] | None = None, style_size: int = 64,
                 eval_styles: int = 2, predict_views: Literal["path", "test"] = "path", path_frames: int = 24) -> None:
        super().__init__()
        if batches not in ("rays", "patches"):
            raise ValueError(f"data batches must be 'rays' or 'patches', got {batches!r}")
        if predict_views not in ("path", "test"):
            raise ValueError(f"data predict_views must be 'path' or 'test', got {predict_views!r}")
        if min(rays_per_batch, patch_size, batches_per_epoch, style_size, path_frames) < 1 or eval_styles < 0:
            raise ValueError("rays_per_batch, patch_size, batches_per_epoch, style_size and path_frames must be >= 1")
        self.batches, self.rays_per_batch, self.patch_size = batches, rays_per_batch, patch_size
        self.one_view_per_batch = one_view_per_batch
        self.batches_per_epoch, self.style_images, self.style_size = batches_per_epoch, style_images, style_size
        self.eval_styles, self.predict_views, self.path_frames = eval_styles, predict_views, path_frames
        self.views: Views | None = None
        self.styles: list[torch.Tensor] = []
        self.style_names: list[str] = []

    def load_views(self) -> Views:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.views is None:
            self.views = self.load_views()
            h, w = self.views.size
            if self.batches == "patches" and self.patch_size > min(h, w):
                raise ValueError(f"data patch_size {self.patch_size} is larger than the images ({h} x {w}): set "
                                 "data.init_args.patch_size to at most their shorter side")
        if self.batches == "patches" and not self.styles:
            paths = [Path(p) for p in self.style_images] if self.style_images else bundled_photos()
            if not paths:
                raise ValueError("data.init_args.style_images is empty: give at least one image file")
            # a short side of twice the crop keeps the crops' detail at a fraction of the full photo's cost
            self.styles = [fit_short_side(read_rgb(p), 2 * self.style_size) for p in paths]
            self.style_names = [p.stem for p in paths]

    def _eval_styles(self) -> tuple[torch.Tensor | None, list[str]]:
        if self.batches != "patches" or self.eval_styles == 0:
            return None, []
        chosen = self.styles[: self.eval_styles]
        return torch.stack([center_crop(s, self.style_size) for s in chosen]), self.style_names[: len(chosen)]

    def _loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=None, shuffle=False, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        if self.batches == "patches":
            return self._loader(_PatchBatches(self.views, self.batches_per_epoch, self.patch_size, self.styles,
                                              self.style_size))
        return self._loader(_RayBatches(self.views, self.batches_per_epoch, self.rays_per_batch,
                                        self.one_view_per_batch))

    def _split(self, name: str) -> DataLoader:
        indices = self.views.splits[name]
        styles, names = self._eval_styles()
        return self._loader(_WholeViews(self.views, self.views.poses[indices], indices, styles, names))

    def val_dataloader(self) -> DataLoader:
        return self._split("val")

    def test_dataloader(self) -> DataLoader:
        return self._split("test")

    def predict_dataloader(self) -> DataLoader:
        if self.predict_views == "test":
            return self._split("test")
        styles, names = self._eval_styles()
        return self._loader(_WholeViews(self.views, self.views.path, None, styles, names))
