"""Views and batches: procedural scenes with exact depth, ray and patch batches that match their pixels, the
Blender and LLFF layouts with one clear line per bad input, style images, the warping error."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lit_digest.core.download import MissingDataError
from lit_digest.nerf.consistency import correspondence_error, warping_error
from lit_digest.nerf.data import view_batch
from lit_digest.nerf.images import read_rgb
from lit_digest.nerf.loaders import ProceduralSceneDataModule, load_blender, load_llff
from lit_digest.nerf.rendering import camera_rays, look_at
from lit_digest.nerf.scenes import Scene, trace


def _one_sphere(radius: float = 0.3) -> Scene:
    return Scene(["sphere"], torch.zeros(1, 3), torch.eye(3)[None], torch.tensor([[radius, 0.0, 0.0]]),
                 torch.full((1, 2, 3), 0.5), torch.zeros(1, 2), torch.tensor([0.0, 0.0, 1.0]), sky=True)


def test_the_sphere_tracer_hits_a_known_sphere_at_its_depth():
    """A camera 0.9 from a sphere of radius 0.3: each pixel's depth is the nearer root of |o + t d| = 0.3 (t along
    d, whose camera z is -1: the z-buffer), the central one 0.6; the rays that miss it see the sky (inf)."""
    pose = look_at(torch.tensor([0.9, 0.0, 0.0]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    origins, dirs = camera_rays(9, 9, 8.0, pose)
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    _, depth = trace(_one_sphere(), o, d)
    a, b, c = (d * d).sum(-1), 2 * (o * d).sum(-1), (o * o).sum(-1) - 0.09
    disc = b * b - 4 * a * c
    expected = torch.where(disc > 0, (-b - disc.clamp(min=0).sqrt()) / (2 * a), torch.full_like(a, math.inf))
    hit = torch.isfinite(expected) & (disc > 1e-3)  # leave out rays that graze the sphere
    assert 8 < int(hit.sum()) < 81 and torch.isinf(depth[disc < 0]).all()
    torch.testing.assert_close(depth[hit], expected[hit], atol=1e-3, rtol=0)
    assert float(depth.view(9, 9)[4, 4]) == pytest.approx(0.6, abs=1e-3)


@pytest.fixture(scope="module")
def scene():
    data = ProceduralSceneDataModule(num_train=6, num_val=1, num_test=3, image_size=16, supersample=1,
                                     rays_per_batch=32, batches_per_epoch=2, test_step_deg=6.0, patch_size=8)
    data.setup("fit")
    return data


def test_ray_batches_carry_the_colour_of_their_pixel_and_rays_through_it(scene):
    views = scene.views
    batch = next(iter(scene.train_dataloader()))
    assert batch["rays_o"].shape == (32, 3) and batch["rgb"].shape == (32, 3)
    # every ray is one of the training views' pixel rays, with that pixel's colour
    full = [view_batch(views, views.poses[v]) for v in views.splits["train"]]
    images = views.images[views.splits["train"]].reshape(-1, 3)
    dirs = torch.cat([f["rays_d"] for f in full])
    origins = torch.cat([f["rays_o"] for f in full])
    for k in range(32):
        match = ((dirs - batch["rays_d"][k]).abs().sum(-1) + (origins - batch["rays_o"][k]).abs().sum(-1)).argmin()
        torch.testing.assert_close(dirs[match], batch["rays_d"][k])
        torch.testing.assert_close(images[match], batch["rgb"][k])


def test_patches_are_strided_grids_of_one_view_with_a_style_image(tmp_path):
    data = ProceduralSceneDataModule(num_train=2, num_val=1, num_test=2, image_size=16, supersample=1,
                                     batches="patches", patch_size=4, style_size=8, batches_per_epoch=3,
                                     style_images=[_png(tmp_path / "s.png")])
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["style"].shape == (3, 8, 8) and batch["rgb"].shape == (16, 3)
    dirs = batch["rays_d"].view(4, 4, 3)
    steps_x, steps_y = dirs[:, 1:] - dirs[:, :-1], dirs[1:] - dirs[:-1]  # a regular grid: constant steps
    torch.testing.assert_close(steps_x, steps_x[:1, :1].expand_as(steps_x), atol=1e-5, rtol=0)
    torch.testing.assert_close(steps_y, steps_y[:1, :1].expand_as(steps_y), atol=1e-5, rtol=0)


def test_validation_batches_hold_a_whole_view_with_its_true_depth(scene):
    batch = next(iter(scene.val_dataloader()))
    assert batch["rays_o"].shape == (256, 3) and batch["image"].shape == (16, 16, 3)
    assert batch["true_depth"].shape == (16, 16) and torch.isfinite(batch["true_depth"]).any()
    assert "styles" not in batch  # stage 1 reads no style images


def test_ground_truth_views_warp_onto_each_other_and_shuffled_views_do_not(scene):
    """Adjacent test views of a diffuse scene agree where both see a point (what the warp maps); the same pair
    without the warp, or with a wrong depth, does not."""
    views, (i, j) = scene.views, scene.views.splits["test"][:2]
    image_i, image_j = views.images[i].permute(2, 0, 1), views.images[j].permute(2, 0, 1)
    error, covered = warping_error(image_i, image_j, views.depth[i], views.depth[j], views.poses[i], views.poses[j],
                                   views.focal)
    assert covered > 0.5
    unwarped = float((image_i - image_j).pow(2).mean())
    wrong, _ = warping_error(image_i, image_j, views.depth[i] * 1.3, views.depth[j], views.poses[i],
                             views.poses[j], views.focal, rel_tol=1.0)
    assert error < 0.5 * unwarped and error < 0.5 * wrong
    same, pairs = correspondence_error(image_i, image_j, views.depth[i], views.depth[j], views.poses[i],
                                       views.poses[j], views.focal, max_offset=0.25)
    swapped, _ = correspondence_error(image_i, image_j.flip(-1), views.depth[i], views.depth[j], views.poses[i],
                                      views.poses[j], views.focal, max_offset=0.25)
    assert pairs > 10 and same < 0.25 * swapped  # the same points have the same colour; a mirrored view does not


def _png(path, size=(8, 8), channels=4):
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    iio.imwrite(path, rng.integers(0, 255, (*size, channels), dtype=np.uint8))
    return str(path)


def _blender(root, matrix=None):
    root.mkdir(parents=True, exist_ok=True)
    pose = matrix if matrix is not None else np.eye(4).tolist()
    for split in ("train", "val", "test"):
        (root / split).mkdir(exist_ok=True)
        frames = [{"file_path": f"./{split}/r_{k}", "transform_matrix": pose} for k in range(2)]
        for k in range(2):
            _png(root / split / f"r_{k}.png")
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.69, "frames": frames}))
    return root


def test_a_blender_scene_loads_with_alpha_on_white_and_its_focal(tmp_path):
    views = load_blender(_blender(tmp_path / "lego"), testskip=1, path_frames=4)
    assert views.images.shape == (6, 8, 8, 3) and views.poses.shape == (6, 3, 4) and views.path.shape == (4, 3, 4)
    assert views.splits == {"train": [0, 1], "val": [2, 3], "test": [4, 5]}
    assert views.focal == pytest.approx(0.5 * 8 / math.tan(0.5 * 0.69))
    rgba = torch.cat([read_rgb(tmp_path / "lego/train/r_0.png"), _alpha(tmp_path / "lego/train/r_0.png")])
    torch.testing.assert_close(views.images[0].permute(2, 0, 1), rgba[:3] * rgba[3:] + 1 - rgba[3:])


def _alpha(path):
    import imageio.v3 as iio

    return torch.from_numpy(iio.imread(path)[..., 3].astype(np.float32) / 255)[None]


def test_bad_blender_and_llff_inputs_get_one_clear_line_each(tmp_path):
    with pytest.raises(MissingDataError, match=r"transforms_train\.json not found at .*nowhere.*data\.init_args\.root"):
        load_blender(tmp_path / "nowhere")
    root = _blender(tmp_path / "bad", matrix=np.eye(3).tolist())
    with pytest.raises(ValueError, match=r"transforms_train\.json, frame 0: transform_matrix has shape \(3, 3\)"):
        load_blender(root)
    with pytest.raises(MissingDataError, match=r"poses_bounds\.npy not found"):
        load_llff(tmp_path / "no_llff")
    (tmp_path / "llff/images").mkdir(parents=True)
    np.save(tmp_path / "llff/poses_bounds.npy", np.zeros((3, 15)))
    with pytest.raises(ValueError, match=r"shape \(3, 15\); expected \(N, 17\)"):
        load_llff(tmp_path / "llff")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="Could not read image .*broken.jpg"):
        read_rgb(bad)


def test_an_llff_capture_loads_in_ndc_with_every_eighth_view_held_out(tmp_path):
    """Poses in LLFF's axes (down, right, back) become OpenGL's (right, up, back); the nearest bound becomes
    1 / 0.75; 9 images with llffhold 8 hold out views 0 and 8."""
    root = tmp_path / "fern"
    (root / "images").mkdir(parents=True)
    rows = []
    for k in range(9):
        _png(root / "images" / f"{k:03d}.png", size=(16, 24), channels=3)
        rotation = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, -1]])  # columns: down, right, back in world axes
        pose = np.concatenate([rotation, [[0.1 * k], [0], [0]], [[16], [24], [20]]], 1)
        rows.append(np.concatenate([pose.ravel(), [2.0, 10.0]]))
    np.save(root / "poses_bounds.npy", np.stack(rows))
    views = load_llff(root, factor=2, llffhold=8, path_frames=5)
    assert views.images.shape == (9, 8, 12, 3) and views.ndc and views.focal == pytest.approx(10.0)
    assert views.splits["test"] == [0, 8] and len(views.splits["train"]) == 7
    torch.testing.assert_close(views.poses[:, :, 3].norm(dim=0)[1:], torch.zeros(2), atol=1e-5, rtol=0)  # centred
    batch = view_batch(views, views.poses[0])
    assert torch.isfinite(batch["rays_o"]).all() and float(batch["rays_o"][:, 2].mean()) == pytest.approx(-1.0)
