"""Masks, sketches and colour maps do what they claim, on real faces (the AT&T faces, skipped when absent) and
drawn ones; the DataModules' samples, splits, determinism, cache and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lit_digest.core.download import MissingDataError
from lit_digest.gan import FaceFolderDataModule, MaskConfig, SyntheticFaceDataModule
from lit_digest.gan.colour import colour_map
from lit_digest.gan.faces import EpochSampler, list_images, load_face
from lit_digest.gan.masks import box_mask, brush_stroke_mask, face_region_mask, random_mask
from lit_digest.gan.sketch import HED, canny_edges, load_hed, luminance


def _faces(root, n: int, size: int = 64) -> list[torch.Tensor]:
    paths = list_images(root)
    return [load_face(p, size) for p in paths[:: max(1, len(paths) // n)][:n]]


def test_masks_stay_within_the_configured_area_on_real_faces(att_faces):
    cfg = MaskConfig(min_area=0.1, max_area=0.4)
    data = FaceFolderDataModule(root=str(att_faces), image_size=64, num_val=40, batch_size=8, num_workers=0,
                                masks=cfg, bilateral_iterations=1)
    data.setup("fit")
    areas = [data.train_set[(i, 0)]["mask"].mean().item() for i in range(0, 360, 9)]
    areas += [random_mask(np.random.default_rng(i), 96, 80, cfg).mean() for i in range(200)]
    assert min(areas) >= 0.1 and max(areas) <= 0.4
    assert np.std(areas) > 0.03  # drawn masks, not the fallback box
    masks = [data.train_set[(0, epoch)]["mask"] for epoch in range(3)]
    assert set(torch.unique(masks[0]).tolist()) <= {0.0, 1.0}
    assert not torch.equal(masks[0], masks[1])  # a new mask each epoch


def test_mask_parts():
    rng = np.random.default_rng(0)
    box = box_mask(rng, 64, 64)
    rows, cols = np.nonzero(box)
    h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
    assert 24 <= h <= 32 and 24 <= w <= 32 and box.sum() == h * w
    eyes = [face_region_mask(rng, 128, 128, MaskConfig(jitter=0.0), "left_eye") for _ in range(3)]
    ys, xs = np.nonzero(eyes[0])
    assert abs(ys.mean() / 128 - 0.45) < 0.02 and abs(xs.mean() / 128 - 0.36) < 0.02
    strokes = brush_stroke_mask(rng, 256, 256)
    assert 0 < strokes.mean() < 0.9 and set(np.unique(strokes)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="min_area"):
        MaskConfig(min_area=0.5, max_area=0.4)


def test_canny_sketch_of_a_square_is_its_outline():
    image = torch.zeros(1, 1, 40, 40)
    image[..., 10:30, 10:30] = 1.0
    edges = canny_edges(image, sigma=1.0)[0, 0]
    ys, xs = torch.nonzero(edges, as_tuple=True)
    on_outline = ((ys - 9.5).abs() <= 1.5) | ((ys - 29.5).abs() <= 1.5) | ((xs - 9.5).abs() <= 1.5) | (
        (xs - 29.5).abs() <= 1.5)
    assert len(ys) >= 60 and bool(on_outline.all())
    inside = (ys > 12) & (ys < 27) & (xs > 12) & (xs < 27)
    assert not bool(inside.any())
    assert canny_edges(torch.full((1, 3, 16, 16), 0.3)).sum() == 0  # no gradient, no line


def test_sketches_are_edges_of_real_faces(att_faces):
    for face in _faces(att_faces, 8):
        x = face.float()[None] / 255
        sketch = canny_edges(x, sigma=0.5)[0, 0].bool()
        gy, gx = torch.gradient(luminance(x)[0, 0])
        grad = torch.hypot(gx, gy)
        assert 0.02 < sketch.float().mean() < 0.25  # thin lines, not areas
        assert grad[sketch].mean() > 3 * grad[~sketch].mean()  # where the photo changes
        # moving the face moves its sketch
        shifted = canny_edges(torch.roll(x, shifts=(5, 3), dims=(2, 3)), sigma=0.5)[0, 0].bool()
        assert (torch.roll(sketch, (5, 3), (0, 1)) & shifted)[8:-8, 8:-8].sum() >= 0.8 * sketch[3:-13, 5:-11].sum()


def test_colour_maps_are_constant_per_region_and_close_to_the_face(att_faces):
    for face in _faces(att_faces, 6):
        x = face.float() / 255
        cmap, regions = colour_map(x, bilateral_iterations=5)
        assert regions.shape == x.shape[1:] and 1 < int(regions.max()) + 1 < x[0].numel() / 20
        for r in torch.unique(regions):
            pixels = cmap[:, regions == r]  # (3, n)
            assert torch.equal(pixels.max(1).values, pixels.min(1).values)
        assert (cmap - x).abs().mean() < 0.06  # a simplification of the face, not another picture


def test_samples_follow_the_model_input_contract_and_are_reproducible():
    data = SyntheticFaceDataModule(num_train=6, num_val=4, image_size=32, batch_size=3, bilateral_iterations=2)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (3, 3, 32, 32) and batch["colour"].shape == (3, 3, 32, 32)
    for key in ("mask", "sketch", "noise"):
        assert batch[key].shape == (3, 1, 32, 32) and set(torch.unique(batch[key]).tolist()) <= {0.0, 1.0}
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    noise_rate = torch.stack([data.train_set[(i, 0)]["noise"] for i in range(6)]).mean()
    assert 0.12 < noise_rate < 0.2  # P(N(0, 1) >= 1) = 0.159, the demo's noise
    again = SyntheticFaceDataModule(num_train=6, num_val=4, image_size=32, batch_size=3, bilateral_iterations=2)
    again.setup("fit")
    for key, value in data.train_set[(2, 5)].items():
        assert torch.equal(value, again.train_set[(2, 5)][key]), key
    assert torch.equal(data.val_set[(1, 0)]["mask"], data.val_set[(1, 7)]["mask"])  # fixed held-out masks
    sampler = EpochSampler(10, shuffle=True, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert sorted(i for i, _ in first) == list(range(10)) and list(sampler) != first
    assert all(epoch == 1 for _, epoch in sampler)


def _write_faces(folder, n, size=(20, 24)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((*size[::-1], 3), 10 * i, np.uint8)).save(folder / f"{i}.png")


def test_folder_layouts_split_and_cache(tmp_path):
    _write_faces(tmp_path / "flat", 12)  # CelebAMask-HQ style: 0.png .. 11.png, the last num_val held out
    data = FaceFolderDataModule(root=str(tmp_path / "flat"), image_size=16, num_val=3, num_workers=0,
                                bilateral_iterations=1, cache_dir=str(tmp_path / "cache"))
    data.setup("fit")
    assert [p.endswith(f"{i}.png") for i, p in zip((9, 10, 11), data.val_set.sources)] == [True] * 3
    assert len(data.train_set) == 9 and data.train_set[0]["image"].shape == (3, 16, 16)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    cached = FaceFolderDataModule(root=str(tmp_path / "flat"), image_size=16, num_val=3, num_workers=0,
                                  bilateral_iterations=1, cache_dir=str(tmp_path / "cache"))
    cached.setup("fit")
    assert torch.equal(cached.train_set[0]["colour"], data.train_set[0]["colour"])
    _write_faces(tmp_path / "split" / "train" / "female", 4)  # StarGAN v2's CelebA-HQ: train/ and val/
    _write_faces(tmp_path / "split" / "val" / "male", 2)
    split = FaceFolderDataModule(root=str(tmp_path / "split"), image_size=16, num_workers=0)
    split.setup("fit")
    assert (len(split.train_set), len(split.val_set)) == (4, 2)


def test_missing_or_empty_data_is_a_clear_error(tmp_path):
    with pytest.raises(MissingDataError, match=r"Face photos not found at .*nothing.*data.init_args.root"):
        FaceFolderDataModule(root=str(tmp_path / "nothing")).setup("fit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="no .jpg"):
        FaceFolderDataModule(root=str(tmp_path / "empty")).setup("fit")
    _write_faces(tmp_path / "few", 3)
    with pytest.raises(ValueError, match="lower data.init_args.num_val"):
        FaceFolderDataModule(root=str(tmp_path / "few"), num_val=5).setup("fit")


def test_hed_loads_its_published_layout_and_needs_its_weights(tmp_path):
    torch.manual_seed(0)
    reference = HED()
    names = {"stages.0": "netVggOne", "stages.1": "netVggTwo", "stages.2": "netVggThr", "stages.3": "netVggFou",
             "stages.4": "netVggFiv", "scores.0": "netScoreOne", "scores.1": "netScoreTwo",
             "scores.2": "netScoreThr", "scores.3": "netScoreFou", "scores.4": "netScoreFiv", "combine": "netCombine"}
    state = {}
    for key, value in reference.state_dict().items():
        prefix = next(p for p in names if key.startswith(p + "."))
        state[names[prefix] + key[len(prefix):]] = value  # sniklaus/pytorch-hed's key names
    torch.save(state, tmp_path / "network-bsds500.pytorch")
    hed = load_hed(tmp_path / "network-bsds500.pytorch")
    x = torch.rand(1, 3, 32, 32)
    out = hed(x)
    assert out.shape == (1, 1, 32, 32) and torch.equal(out, reference(x))
    with pytest.raises(MissingDataError, match="sketch canny"):
        load_hed(tmp_path / "absent.pytorch")
    with pytest.raises(ValueError, match="hed_weights"):
        SyntheticFaceDataModule(sketch="hed").setup("fit")
    data = SyntheticFaceDataModule(num_train=2, num_val=1, image_size=32, sketch="hed", bilateral_iterations=1,
                                   hed_weights=str(tmp_path / "network-bsds500.pytorch"))
    data.setup("fit")
    assert data.train_set[0]["sketch"].shape == (1, 32, 32)


def test_a_corrupt_photo_is_named_when_the_data_is_set_up(tmp_path):
    """Before: ``PIL.UnidentifiedImageError`` from a DataLoader worker in the middle of the first epoch."""
    for i in range(4):
        Image.fromarray(np.full((40, 36, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "3.png").write_bytes(b"<html>404 Not Found</html>")  # a failed download saved as a photo
    data = FaceFolderDataModule(root=str(tmp_path), image_size=32, num_val=1, num_workers=0)
    with pytest.raises(ValueError, match=r"3\.png' is not a readable image .*remove or replace the file"):
        data.setup("fit")


def test_missing_att_faces_name_their_source_and_the_get_command(tmp_path):
    """Before: the AT&T faces' error pointed to CelebA-HQ's URL."""
    data = FaceFolderDataModule(root=str(tmp_path / "data" / "att_faces"), image_size=32, num_val=40)
    with pytest.raises(MissingDataError, match=r"AT&T faces not found .*att_faces\.zip.*python -m lit_digest get "
                                               r"att_faces"):
        data.setup("fit")
