"""Multi-view consistency as a warping error: view ``j`` warped into view ``i`` with the known depth and poses,
compared with view ``i`` where both see the same point.

The stylisation paper measures consistency with the temporal warping error of Lai et al. (ECCV 2018, "Learning
Blind Video Temporal Consistency"; 2105.13016 section 4): ``E = sum_p M_p ||V_i(p) - W(V_j)(p)||^2 / sum_p M_p``
with the warp from optical flow and ``M`` its occlusion mask. With exact depth and poses the warp is exact: each
pixel of view ``i`` is lifted to its 3-D point (or, for the sky at infinity, its direction), projected into
view ``j``, and ``j`` is sampled there bilinearly; ``M`` keeps the pixels that land inside view ``j`` on the
same surface (``j``'s depth there within ``rel_tol`` of the point's, or sky on both).

At the resolutions a CPU trains (32 px) the bilinear resampling itself costs more than the inconsistency: two
exact views of a diffuse scene already differ after the warp wherever the image has detail, and a blurrier
image scores better. ``correspondence_error`` therefore also compares only the pixels whose point lands within
``max_offset`` pixels of a pixel centre of view ``j``, with that pixel as it is (no interpolation): whether the
same point has the same colour in both views, which is what multi-view consistency asks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lit_digest.nerf.rendering import camera_rays

__all__ = ["warp", "warping_error", "correspondence_error"]


def project(depth_i: torch.Tensor, depth_j: torch.Tensor, pose_i: torch.Tensor, pose_j: torch.Tensor, focal: float,
            rel_tol: float = 0.02) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each pixel of view ``i`` lands in view ``j``: continuous pixel indices ``u``, ``v`` ``(H, W)`` (centres
    at integers) and the mask of pixels that both views see. Depths ``(H, W)`` are z-buffers (``inf``: sky);
    poses camera-to-world ``(3, 4)``."""
    h, w = depth_i.shape
    origins, dirs = camera_rays(h, w, focal, pose_i)  # (H, W, 3): t along dirs is the z-buffer depth
    sky = ~torch.isfinite(depth_i)
    points = origins + torch.where(sky, torch.zeros_like(depth_i), depth_i)[..., None] * dirs
    rotation_t = pose_j[:, :3].T
    local = torch.where(sky[..., None], dirs @ rotation_t.T, (points - pose_j[:, 3]) @ rotation_t.T)  # camera j
    z = -local[..., 2]
    u = focal * local[..., 0] / z + w / 2 - 0.5  # continuous pixel index (centres at integers)
    v = -focal * local[..., 1] / z + h / 2 - 0.5
    inside = (z > 1e-6) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    nearest = depth_j[v.round().clamp(0, h - 1).long(), u.round().clamp(0, w - 1).long()]
    same = torch.where(sky, ~torch.isfinite(nearest), (nearest - z).abs() <= rel_tol * z)
    return u, v, inside & same


def warp(image_j: torch.Tensor, depth_i: torch.Tensor, depth_j: torch.Tensor, pose_i: torch.Tensor,
         pose_j: torch.Tensor, focal: float, rel_tol: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    """View ``j`` ``(3, H, W)`` resampled bilinearly at the pixels of view ``i``, and the mask ``(H, W)`` of pixels
    seen by both."""
    h, w = depth_i.shape
    u, v, mask = project(depth_i, depth_j, pose_i, pose_j, focal, rel_tol)
    grid = torch.stack([u / (w - 1) * 2 - 1, v / (h - 1) * 2 - 1], -1)[None]  # (1, H, W, 2)
    warped = F.grid_sample(image_j[None], grid.nan_to_num(0.0), mode="bilinear", align_corners=True)[0]
    return warped, mask


def warping_error(image_i: torch.Tensor, image_j: torch.Tensor, depth_i: torch.Tensor, depth_j: torch.Tensor,
                  pose_i: torch.Tensor, pose_j: torch.Tensor, focal: float, rel_tol: float = 0.02
                  ) -> tuple[float, float]:
    """Mean over the pixels seen by both views (and over RGB) of the squared difference between view ``i`` and
    view ``j`` warped into it; and the share of such pixels."""
    warped, mask = warp(image_j, depth_i, depth_j, pose_i, pose_j, focal, rel_tol)
    if not mask.any():
        return float("nan"), 0.0
    diff = (image_i - warped)[:, mask]  # (3, M)
    return float(diff.pow(2).mean()), float(mask.float().mean())


def correspondence_error(image_i: torch.Tensor, image_j: torch.Tensor, depth_i: torch.Tensor, depth_j: torch.Tensor,
                         pose_i: torch.Tensor, pose_j: torch.Tensor, focal: float, max_offset: float = 0.15,
                         rel_tol: float = 0.02) -> tuple[float, int]:
    """Mean squared colour difference (over RGB) between the pixels of view ``i`` and the pixels of view ``j``
    that see the same point, for the pixels whose point lands within ``max_offset`` pixels (in x and in y) of a
    pixel centre of view ``j``; and how many such pairs there are."""
    u, v, mask = project(depth_i, depth_j, pose_i, pose_j, focal, rel_tol)
    col, row = u.nan_to_num(0.0).round(), v.nan_to_num(0.0).round()
    mask = mask & ((u - col).abs() <= max_offset) & ((v - row).abs() <= max_offset)
    if not mask.any():
        return float("nan"), 0
    matched = image_j[:, row[mask].long(), col[mask].long()]  # (3, M)
    return float((image_i[:, mask] - matched).pow(2).mean()), int(mask.sum())
