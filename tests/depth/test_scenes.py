"""Procedural scenes: exact depth (closed-form geometry and a brute-force ray test), determinism, the DataModule."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.depth.data import ProceduralRGBDDataModule, render_scenes
from lit_digest.depth.scenes import SceneSpec, camera_rays, render_scene, render_spec, sample_scene, trace


def empty_room(boxes=None, spheres=None, height=1.5, pitch=0.0, back=10.0) -> SceneSpec:
    boxes = torch.zeros(0, 7) if boxes is None else torch.tensor(boxes, dtype=torch.float32)
    spheres = torch.zeros(0, 4) if spheres is None else torch.tensor(spheres, dtype=torch.float32)
    n = 5 + len(boxes) + len(spheres)
    materials = torch.cat([torch.rand(n, 6), torch.zeros(n, 1), torch.full((n, 1), 0.5)], 1)
    return SceneSpec(height, pitch, math.radians(60.0), (3.0, 3.0, back), boxes, spheres, materials,
                     torch.tensor([0.0, 1.0, 0.0]))


def test_depth_of_planes_boxes_and_spheres_is_exact():
    size = 65  # odd: one pixel centre on the optical axis
    tan = math.tan(math.radians(30))
    centre = size // 2
    # the back wall at 10 m straight ahead; the floor below the horizon at z = h / (v tan(fov/2))
    depth = render_spec(empty_room(), size, 1)[1][0]
    assert depth[centre, centre].item() == pytest.approx(10.0, rel=1e-6)
    for row in range(centre + 12, size):
        v = (row + 0.5) / size * 2 - 1
        assert depth[row, centre].item() == pytest.approx(1.5 / (v * tan), rel=1e-5)
    # a box facing the camera (yaw 0): its front face at z = cz - hz; a sphere on the axis: cz - r
    box = [[0.0, 6.0, 0.5, 1.5, 0.5, 0.0, 0.0]]  # centre x, z, half sizes, yaw, pole flag
    assert render_spec(empty_room(boxes=box), size, 1)[1][0, centre, centre].item() == pytest.approx(5.5, rel=1e-6)
    sphere = [[0.0, 1.5, 4.0, 0.6]]  # centre x, y (camera height), z, radius
    assert render_spec(empty_room(spheres=sphere), size, 1)[1][0, centre, centre].item() == pytest.approx(3.4, rel=1e-6)


def _brute_force_depth(spec: SceneSpec, d: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """The nearest positive hit along each ray (float64, one ray at a time, textbook formulas)."""
    out = []
    half_width, ceiling, back = spec.room
    for ray in d.double():
        hits = []
        for axis, offset in [(1, 0.0), (1, ceiling), (2, back), (0, -half_width), (0, half_width)]:
            if ray[axis] != 0:
                hits.append((offset - float(o[axis])) / float(ray[axis]))
        for cx, cz, hx, hy, hz, yaw, _ in spec.boxes.tolist():
            c, s = math.cos(yaw), math.sin(yaw)
            rel = [float(o[0]) - cx, float(o[1]) - hy, float(o[2]) - cz]
            lo = [c * rel[0] - s * rel[2], rel[1], s * rel[0] + c * rel[2]]
            ld = [c * float(ray[0]) - s * float(ray[2]), float(ray[1]), s * float(ray[0]) + c * float(ray[2])]
            t0, t1 = -math.inf, math.inf
            for k, h in enumerate((hx, hy, hz)):
                if abs(ld[k]) < 1e-12:
                    if abs(lo[k]) > h:
                        t0, t1 = math.inf, -math.inf
                    continue
                a, b = sorted(((-h - lo[k]) / ld[k], (h - lo[k]) / ld[k]))
                t0, t1 = max(t0, a), min(t1, b)
            if t0 <= t1:
                hits.append(t0)
        for cx, cy, cz, r in spec.spheres.tolist():
            rel = o.double() - torch.tensor([cx, cy, cz], dtype=torch.float64)
            a, b, c = float(ray @ ray), 2 * float(ray @ rel), float(rel @ rel) - r * r
            if b * b - 4 * a * c >= 0:
                hits.append((-b - math.sqrt(b * b - 4 * a * c)) / (2 * a))
        out.append(min(t for t in hits if t > 1e-4))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("index", [0, 5, 11])
def test_traced_depth_equals_a_brute_force_intersection_of_every_surface(index):
    spec = sample_scene(3, index)
    d, o = camera_rays(spec, 48, 1)
    rays = torch.randperm(d.shape[0], generator=torch.Generator().manual_seed(index))[:150]
    t, material, point = trace(spec, d[rays], o)
    expected = _brute_force_depth(spec, d[rays], o)
    torch.testing.assert_close(t.double(), expected, rtol=1e-4, atol=1e-4)
    # the z-buffer: the camera-space z of the hit point equals t (rays are scaled to z = 1)
    floor = material == 0
    assert torch.allclose(point[floor, 1], torch.zeros(int(floor.sum())), atol=1e-3)


def test_scenes_are_deterministic_and_distinct():
    a_img, a_depth = render_scene(0, 4, 32, 1)
    b_img, b_depth = render_scene(0, 4, 32, 1)
    assert torch.equal(a_img, b_img) and torch.equal(a_depth, b_depth)
    assert not torch.equal(render_scene(0, 5, 32, 1)[1], a_depth)
    assert not torch.equal(render_scene(1, 4, 32, 1)[1], a_depth)
    assert a_img.dtype == torch.uint8 and a_img.shape == (3, 32, 32) and a_depth.shape == (1, 32, 32)
    assert torch.isfinite(a_depth).all() and a_depth.min() > 0


def test_datamodule_splits_are_different_scenes_and_the_cache_round_trips(tmp_path):
    dm = ProceduralRGBDDataModule(num_train=3, num_val=2, num_test=2, image_size=24, antialias=1, batch_size=2,
                                  cache_dir=str(tmp_path))
    dm.prepare_data()
    assert len(list(tmp_path.glob("procedural-*.pt"))) == 3
    dm.setup("fit")
    image, depth = next(iter(dm.train_dataloader()))
    assert image.shape == (2, 3, 24, 24) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert depth.shape == (2, 1, 24, 24)
    val = next(iter(dm.val_dataloader()))[1]
    assert not any(torch.equal(v, t) for v in val for t in dm.splits["train"].data.tensors[1])
    cached = render_scenes(1, 2, 24, 1, tmp_path)  # the validation scenes, now from the cache
    assert torch.equal(cached[1], dm.splits["val"].data.tensors[1])
