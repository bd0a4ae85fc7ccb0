"""Procedural RGB-D scenes with exact depth: a textured room with boxes, spheres and thin poles, ray cast.

No depth model or RGB-D set can be downloaded here, so the paper's effect (arXiv 2105.14021,
section 3: low input resolutions give consistent structure, high ones fine detail) is measured on
scenes whose depth is known exactly. A pinhole camera at height ``h`` looks into a box-shaped room
(floor, ceiling, back and side walls); 2-6 boxes (turned about the vertical), 1-3 spheres and
0-4 thin poles stand on the floor. Every surface has its own procedural texture in world units
(3-d checker, stripes, or none), so the image carries the usual monocular cues: texture that shrinks
with distance, the floor's perspective, occlusion, Lambertian shading; textureless surfaces give
no local cue at all.

``depth`` is the z-buffer (distance along the optical axis) at the pixel centres, solved in closed
form for every ray (planes, slab test for boxes, quadratic for spheres): exact up to float32.
The colour is supersampled (``antialias`` x ``antialias`` rays per pixel, averaged).
Scene ``i`` of seed ``s`` is the same on every machine (its own ``torch.Generator``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["render_scene", "render_spec", "SceneSpec", "sample_scene", "camera_rays", "trace", "surface_normals"]


@dataclass
class SceneSpec:
    """The geometry and materials of one scene (world units: metres, y up, camera at the origin's x/z)."""

    height: float  # camera height above the floor
    pitch: float  # downward tilt, radians
    fov: float  # horizontal and vertical field of view, radians
    room: tuple[float, float, float]  # half width, ceiling height, back wall distance
    boxes: torch.Tensor  # (Nb, 7): centre x, z, half sizes x, y, z, yaw, (unused)
    spheres: torch.Tensor  # (Ns, 4): centre x, y, z, radius
    materials: torch.Tensor  # (5 + Nb + Ns, 8): rgb a, rgb b, pattern, period
    light: torch.Tensor  # (3,) unit direction towards the light


def _uniform(g: torch.Generator, low: float, high: float, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape or (1,), generator=g)


def sample_scene(seed: int, index: int) -> SceneSpec:
    """Scene ``index`` of ``seed``: deterministic, independent of any global random state."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    half_width, ceiling, back = (_uniform(g, 2.5, 4.5).item(), _uniform(g, 2.6, 3.6).item(),
                                 _uniform(g, 7.0, 13.0).item())
    height = _uniform(g, 1.0, 1.8).item()
    n_boxes, n_spheres, n_poles = (int(torch.randint(lo, hi + 1, (1,), generator=g)) for lo, hi in
                                   [(2, 6), (1, 3), (0, 4)])
    boxes = torch.cat([
        _uniform(g, -half_width + 0.6, half_width - 0.6, n_boxes, 1), _uniform(g, 2.0, back - 1.0, n_boxes, 1),
        _uniform(g, 0.2, 0.7, n_boxes, 1), _uniform(g, 0.2, 1.0, n_boxes, 1), _uniform(g, 0.2, 0.7, n_boxes, 1),
        _uniform(g, 0.0, math.pi, n_boxes, 1), torch.zeros(n_boxes, 1),
    ], 1)
    poles = torch.cat([
        _uniform(g, -half_width + 0.3, half_width - 0.3, n_poles, 1), _uniform(g, 2.0, back - 0.5, n_poles, 1),
        _uniform(g, 0.015, 0.05, n_poles, 1), _uniform(g, 0.8, 1.6, n_poles, 1), _uniform(g, 0.015, 0.05, n_poles, 1),
        _uniform(g, 0.0, math.pi, n_poles, 1), torch.ones(n_poles, 1),
    ], 1)
    radius = _uniform(g, 0.2, 0.7, n_spheres, 1)
    spheres = torch.cat([_uniform(g, -half_width + 0.8, half_width - 0.8, n_spheres, 1), radius,
                         _uniform(g, 2.0, back - 1.0, n_spheres, 1), radius], 1)
    n_materials = 5 + n_boxes + n_poles + n_spheres
    pattern = torch.randint(0, 3, (n_materials, 1), generator=g).float()  # 0 flat, 1 checker, 2 stripes
    materials = torch.cat([torch.rand(n_materials, 6, generator=g) * 0.8 + 0.1, pattern,
                           _uniform(g, 0.15, 0.8, n_materials, 1)], 1)
    light = torch.tensor([_uniform(g, -0.6, 0.6).item(), 1.0, -_uniform(g, 0.2, 0.8).item()])
    return SceneSpec(height, _uniform(g, 0.0, 0.25).item(), math.radians(60.0), (half_width, ceiling, back),
                     torch.cat([boxes, poles]), spheres, materials, light / light.norm())


def camera_rays(spec: SceneSpec, size: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space ray directions ``(P, 3)`` for ``samples`` x ``samples`` sub-pixels per pixel, scaled so that
    the ray parameter ``t`` is the depth along the optical axis; and the camera position."""
    n = size * samples
    coords = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 - 1  # pixel centres in [-1, 1]
    tan = math.tan(spec.fov / 2)
    v, u = torch.meshgrid(coords, coords, indexing="ij")
    d = torch.stack([u * tan, -v * tan, torch.ones_like(u)], -1).reshape(-1, 3)  # camera space, z = 1
    c, s = math.cos(spec.pitch), math.sin(spec.pitch)
    rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])  # tilt down about x
    return d @ rot, torch.tensor([0.0, spec.height, 0.0])


def _near(d: torch.Tensor, o: torch.Tensor, centre: torch.Tensor, radius: float) -> torch.Tensor:
    """Indices of the rays that pass within ``radius`` of ``centre`` (a bounding sphere): only those are tested."""
    rel = centre - o
    along = d @ rel  # (P,)
    dist2 = float(rel @ rel) - along * along / (d * d).sum(-1)
    return ((dist2 <= radius * radius) & ((along > 0) | (float(rel @ rel) <= radius * radius))).nonzero()[:, 0]


def _box_frame(yaw: float, v: torch.Tensor) -> torch.Tensor:
    """World vectors (N, 3) into a box frame turned by ``yaw`` about y."""
    c, s = math.cos(yaw), math.sin(yaw)
    return torch.stack([c * v[..., 0] - s * v[..., 2], v[..., 1], s * v[..., 0] + c * v[..., 2]], -1)


def trace(spec: SceneSpec, d: torch.Tensor, o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest hit of every ray (origin ``o``, directions ``d`` (P, 3)): depth ``t`` (P,), material id (P,) and the
    hit point (P, 3). Materials: 0 floor, 1 ceiling, 2 back wall, 3-4 side walls, then boxes, then spheres."""
    half_width, ceiling, back = spec.room
    axes = torch.tensor([1, 1, 2, 0, 0])
    offsets = torch.tensor([0.0, ceiling, back, -half_width, half_width])
    with torch.no_grad():
        t_planes = (offsets - o[axes]) / d[:, axes]  # (P, 5)
    t_planes = torch.where(t_planes > 1e-4, t_planes, torch.full_like(t_planes, math.inf))
    best_t, best_id = t_planes.min(1)
    for j, (cx, cz, hx, hy, hz, yaw, _) in enumerate(spec.boxes.tolist()):
        centre, half = torch.tensor([cx, hy, cz]), torch.tensor([hx, hy, hz])
        idx = _near(d, o, centre, float(half.norm()))
        if idx.numel() == 0:
            continue
        local_o, local_d = _box_frame(yaw, o - centre), _box_frame(yaw, d[idx])  # slab test in the box frame
        inv = 1.0 / torch.where(local_d.abs() < 1e-9, torch.full_like(local_d, 1e-9), local_d)
        t1, t2 = (-half - local_o) * inv, (half - local_o) * inv
        t_near, t_far = torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1)
        t = torch.where((t_near <= t_far) & (t_near > 1e-4), t_near, torch.full_like(t_near, math.inf))
        closer = t < best_t[idx]
        best_t[idx] = torch.where(closer, t, best_t[idx])
        best_id[idx] = torch.where(closer, 5 + j, best_id[idx])
    for j, (cx, cy, cz, r) in enumerate(spec.spheres.tolist()):
        centre = torch.tensor([cx, cy, cz])
        idx = _near(d, o, centre, r)
        if idx.numel() == 0:
            continue
        rel, dd = o - centre, d[idx]
        a, b, c = (dd * dd).sum(-1), 2 * (dd @ rel), float(rel @ rel) - r * r
        disc = b * b - 4 * a * c
        t = (-b - disc.clamp_min(0).sqrt()) / (2 * a)
        t = torch.where((disc >= 0) & (t > 1e-4), t, torch.full_like(t, math.inf))
        closer = t < best_t[idx]
        best_t[idx] = torch.where(closer, t, best_t[idx])
        best_id[idx] = torch.where(closer, 5 + len(spec.boxes) + j, best_id[idx])
    return best_t, best_id, o + best_t[:, None] * d


def surface_normals(spec: SceneSpec, material: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """Unit outward normals (P, 3) at hit points of the given materials."""
    normal = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0],
                           [-1.0, 0.0, 0.0]])[material.clamp_max(4)]
    for j, (cx, cz, hx, hy, hz, yaw, _) in enumerate(spec.boxes.tolist()):
        idx = (material == 5 + j).nonzero()[:, 0]
        local = _box_frame(yaw, point[idx] - torch.tensor([cx, hy, cz])) / torch.tensor([hx, hy, hz])
        axis = local.abs().argmax(-1)
        local_n = torch.nn.functional.one_hot(axis, 3).float() * torch.sign(local.gather(1, axis[:, None]))
        normal[idx] = _box_frame(-yaw, local_n)
    for j, (cx, cy, cz, r) in enumerate(spec.spheres.tolist()):
        idx = (material == 5 + len(spec.boxes) + j).nonzero()[:, 0]
        normal[idx] = (point[idx] - torch.tensor([cx, cy, cz])) / r
    return normal


def _shade(spec: SceneSpec, material: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    normal = surface_normals(spec, material, point)
    m = spec.materials[material]  # (P, 8)
    period = m[:, 7:8]
    cells = torch.floor(point / period).sum(-1, keepdim=True)
    checker = torch.remainder(cells, 2)
    stripes = torch.remainder(torch.floor((point[:, :1] + point[:, 2:]) / period), 2)
    pattern = m[:, 6:7]
    mix = torch.where(pattern == 1, checker, torch.where(pattern == 2, stripes, torch.zeros_like(checker)))
    albedo = m[:, :3] * (1 - mix) + m[:, 3:6] * mix
    lambert = (normal @ spec.light).clamp_min(0)[:, None]
    return albedo * (0.35 + 0.65 * lambert)


def render_scene(seed: int, index: int, size: int = 192, antialias: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Scene ``index`` of ``seed`` at ``size`` x ``size``: ``image`` (3, H, W) uint8 and ``depth`` (1, H, W)
    float32, the exact z-distance at each pixel centre."""
    return render_spec(sample_scene(seed, index), size, antialias)


@torch.no_grad()
def render_spec(spec: SceneSpec, size: int, antialias: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``render_scene`` for a given ``SceneSpec``."""
    d, o = camera_rays(spec, size, 1)
    depth = trace(spec, d, o)[0].reshape(1, size, size)
    d, o = camera_rays(spec, size, antialias)
    _, material, point = trace(spec, d, o)
    rgb = _shade(spec, material, point).T.reshape(3, size * antialias, size * antialias)
    rgb = F.avg_pool2d(rgb[None], antialias)[0] if antialias > 1 else rgb
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8), depth
