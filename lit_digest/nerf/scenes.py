"""Procedural scenes with known poses, images and depth, rendered here by sphere tracing analytic shapes.

No NeRF scene can be downloaded here, so the offline runs fit scenes made on the spot: 4 to 6 spheres, boxes
and tori (exact signed distance functions, turned at random) inside a ball of radius 0.5, each with its own
colour and pattern in world coordinates (flat, checker or stripes), lit by a sun and a sky term (Lambertian, so
a point looks the same from every view, as a diffuse scene does). Behind them, a sky at infinity whose colour
depends on the direction only (a vertical gradient with soft bands in azimuth): the unbounded background that
NeRF++'s parameterisation is for; or plain white, as the Blender scenes.

Cameras (the Blender convention: z up, looking along their -z) sit on a sphere of radius 0.9 around the
origin, inside the unit sphere as NeRF++ requires, looking at it. ``depth`` is the z-buffer value (distance
along the optical axis) of the first surface at each pixel centre, ``inf`` for the sky. Colours are
supersampled ``supersample`` x ``supersample`` per pixel. Scene ``seed`` is the same on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lit_digest.nerf.rendering import camera_rays, look_at

__all__ = ["Scene", "sample_scene", "trace", "camera_on_sphere", "render_views", "CAMERA_RADIUS"]

CAMERA_RADIUS = 0.9
_SHAPES = ("sphere", "box", "torus")


@dataclass
class Scene:
    kinds: list[str]  # one of _SHAPES per shape
    centres: torch.Tensor  # (K, 3)
    rotations: torch.Tensor  # (K, 3, 3) world-to-local
    sizes: torch.Tensor  # (K, 3): sphere radius / box half sizes / torus radii (major, minor)
    colours: torch.Tensor  # (K, 2, 3): two colours of the pattern
    patterns: torch.Tensor  # (K, 2): kind (0 flat, 1 checker, 2 stripes), period
    sun: torch.Tensor  # (3,) unit
    sky: bool


def _random_rotation(g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g))
    q = q * torch.sign(torch.diagonal(r))
    return q * torch.sign(torch.det(q))


def sample_scene(seed: int, sky: bool = True) -> Scene:
    """Scene ``seed``: 4-6 shapes placed without deep overlaps, independent of any global random state."""
    g = torch.Generator().manual_seed(seed)
    count = int(torch.randint(4, 7, (), generator=g))
    kinds, centres, sizes, radii = [], [], [], []
    for _ in range(500):  # rejection sampling of positions; a crowded draw keeps the shapes placed so far
        if len(kinds) == count:
            break
        kind = _SHAPES[int(torch.randint(0, 3, (), generator=g))]
        radius = 0.12 + 0.1 * float(torch.rand((), generator=g))  # a bound of the shape's extent
        centre = (torch.rand(3, generator=g) * 2 - 1) * (0.5 - radius)
        if centre.norm() > 0.5 - radius or any((centre - c).norm() < 0.8 * (radius + r)
                                                for c, r in zip(centres, radii)):
            continue
        if kind == "sphere":
            size = torch.tensor([radius, 0.0, 0.0])
        elif kind == "box":  # half sizes
            size = radius * (0.45 + 0.3 * torch.rand(3, generator=g))
        else:  # torus: major and minor radii
            size = torch.tensor([0.7 * radius, 0.3 * radius, 0.0])
        kinds.append(kind)
        centres.append(centre)
        sizes.append(size)
        radii.append(radius)
    rotations = torch.stack([_random_rotation(g) for _ in kinds])
    colours = 0.15 + 0.8 * torch.rand(len(kinds), 2, 3, generator=g)
    patterns = torch.stack([torch.randint(0, 3, (len(kinds),), generator=g).float(),
                            0.04 + 0.08 * torch.rand(len(kinds), generator=g)], -1)
    sun = F.normalize(torch.tensor([0.4, -0.3, 1.0]) + 0.3 * torch.randn(3, generator=g), dim=0)
    return Scene(kinds, torch.stack(centres), rotations, torch.stack(sizes), colours, patterns, sun, sky)


def _distances(scene: Scene, p: torch.Tensor) -> torch.Tensor:
    """Signed distance of points ``(P, 3)`` to every shape ``(P, K)`` (exact for each shape)."""
    local = torch.einsum("kij,pkj->pki", scene.rotations, p[:, None, :] - scene.centres)  # (P, K, 3)
    out = []
    for k, kind in enumerate(scene.kinds):
        q, s = local[:, k], scene.sizes[k]
        if kind == "sphere":
            out.append(q.norm(dim=-1) - s[0])
        elif kind == "box":
            d = q.abs() - s
            out.append(d.clamp(min=0).norm(dim=-1) + d.max(-1).values.clamp(max=0))
        else:
            ring = torch.stack([q[:, :2].norm(dim=-1) - s[0], q[:, 2]], -1)
            out.append(ring.norm(dim=-1) - s[1])
    return torch.stack(out, -1)


def _shade(scene: Scene, p: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """Lambertian colour ``(P, 3)`` of surface points ``p`` on shapes ``shape`` ``(P,)``."""
    eps = 1e-3
    offsets = torch.eye(3) * eps
    grad = torch.stack([(_distances(scene, p + o).min(-1).values - _distances(scene, p - o).min(-1).values)
                        for o in offsets], -1)
    normal = F.normalize(grad, dim=-1)
    kind, period = scene.patterns[shape, 0], scene.patterns[shape, 1]
    cells = torch.floor(p / period[:, None]).long()
    checker = (cells.sum(-1) % 2).float()
    stripes = (torch.floor((p[:, 0] + p[:, 1] + p[:, 2]) / period).long() % 2).float()
    mix = torch.where(kind == 1, checker, torch.where(kind == 2, stripes, torch.zeros_like(checker)))
    albedo = torch.lerp(scene.colours[shape, 0], scene.colours[shape, 1], mix[:, None])
    light = 0.3 + 0.25 * normal[:, 2:3] + 0.6 * (normal @ scene.sun).clamp(min=0)[:, None]
    return (albedo * light).clamp(0, 1)


def _sky(scene: Scene, direction: torch.Tensor) -> torch.Tensor:
    if not scene.sky:
        return torch.ones_like(direction)
    d = F.normalize(direction, dim=-1)
    up = d[:, 2:3].clamp(-1, 1)
    base = torch.lerp(torch.tensor([0.85, 0.75, 0.6]), torch.tensor([0.25, 0.45, 0.85]), (up + 1) / 2)
    bands = 0.5 + 0.5 * torch.sin(6 * torch.atan2(d[:, 1], d[:, 0]) + 4 * up[:, 0])
    return (base * (0.8 + 0.2 * bands[:, None])).clamp(0, 1)


def trace(scene: Scene, origins: torch.Tensor, directions: torch.Tensor, steps: int = 96
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sphere tracing of rays ``o + t d``: colours ``(P, 3)`` and the ray parameter ``t`` of the first hit
    ``(P,)`` (``inf`` for the sky)."""
    unit = F.normalize(directions, dim=-1)
    t = torch.zeros(origins.shape[0])
    active = torch.arange(origins.shape[0])
    for _ in range(steps):  # march the rays still between their start and the far limit, away from a surface
        d = _distances(scene, origins[active] + t[active, None] * unit[active]).min(-1).values
        t[active] += d
        active = active[(d > 1e-5) & (t[active] < 3.0)]
        if active.numel() == 0:
            break
    hit = _distances(scene, origins + t[:, None] * unit).min(-1)
    found = (hit.values.abs() < 2e-4) & (t < 3.0)
    colour = _sky(scene, unit)
    if found.any():
        p = origins[found] + t[found, None] * unit[found]
        colour[found] = _shade(scene, p, hit.indices[found])
    return colour, torch.where(found, t / directions.norm(dim=-1), torch.full_like(t, math.inf))


def camera_on_sphere(azimuth_deg: float, elevation_deg: float, radius: float = CAMERA_RADIUS) -> torch.Tensor:
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    eye = radius * torch.tensor([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    return look_at(eye, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))


def render_views(scene: Scene, poses: torch.Tensor, size: int, focal: float, supersample: int = 2
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, size, size, 3)`` and z-buffer depths ``(N, size, size)`` (``inf``: sky) of ``poses``, all
    views traced at once."""
    n, fine = len(poses), size * supersample
    rays = [camera_rays(fine, fine, focal * supersample, c2w) for c2w in poses]
    colour, _ = trace(scene, torch.cat([o.reshape(-1, 3) for o, _ in rays]), torch.cat([d.reshape(-1, 3)
                                                                                         for _, d in rays]))
    images = colour.view(n, size, supersample, size, supersample, 3).mean((2, 4))
    rays = [camera_rays(size, size, focal, c2w) for c2w in poses]
    _, depth = trace(scene, torch.cat([o.reshape(-1, 3) for o, _ in rays]), torch.cat([d.reshape(-1, 3)
                                                                                       for _, d in rays]))
    return images, depth.view(n, size, size)
