"""AET's samplers do what their parameters say: matrix and image warp agree, the homography sends each corner to
its target, the normalised targets decode back to the matrix, the official ranges and encodings hold."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.ssl.aet import (
    AffineTransformation,
    PadCropFlip,
    ProjectiveTransformation,
    apply_matrix,
    homography_from_points,
    warp,
)
from lit_digest.ssl.aet.transforms import image_corners

SAMPLERS = [AffineTransformation(), ProjectiveTransformation()]
IDS = ["affine", "projective"]


def coordinate_field(n: int, height: int, width: int) -> torch.Tensor:
    """``(n, 3, H, W)``: each pixel holds its centre ``(x, y)`` and a 1 (where the warp reads inside the image)."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return torch.stack([xs, ys, torch.ones_like(xs)]).expand(n, 3, height, width).contiguous()


@pytest.mark.parametrize("sampler", SAMPLERS, ids=IDS)
@pytest.mark.parametrize("size", [(32, 32), (24, 40)])
def test_the_matrix_maps_every_point_where_the_image_warp_moves_it(sampler, size):
    """The point set is every pixel centre of the input: warping the image of their coordinates puts, at each
    output pixel q, the input point the image warp moved to q; the sampled matrix must send that point to q."""
    h, w = size
    g = torch.Generator().manual_seed(0)
    x = coordinate_field(64, h, w)
    out = sampler(x, generator=g, fill=0.0)
    points = out.images[:, :2].permute(0, 2, 3, 1).reshape(64, -1, 2)  # (B, H*W, 2) input points
    inside = out.images[:, 2].reshape(64, -1) > 1 - 1e-5  # read fully inside the input (no fill blended in)
    targets = coordinate_field(1, h, w)[:, :2].permute(0, 2, 3, 1).reshape(1, -1, 2).expand(64, -1, 2)
    assert inside.float().mean() > 0.5  # most of the output shows the input
    torch.testing.assert_close(apply_matrix(out.matrix, points)[inside], targets[inside], atol=2e-4, rtol=0)


def test_integer_translation_and_quarter_turns_move_pixels_exactly():
    x = torch.rand(2, 3, 32, 32)
    affine = AffineTransformation()
    one = torch.ones(2)
    shift = affine.matrix({"angle": 0 * one, "tx": 3 * one, "ty": -2 * one, "scale": one, "shear": 0 * one}, 32, 32)
    moved = warp(x, shift, fill=0.25)
    torch.testing.assert_close(moved[..., :30, 3:], x[..., 2:, :29], atol=1e-5, rtol=0)  # q = p + (3, -2)
    grey = torch.tensor(0.25)
    assert torch.allclose(moved[..., :, :3], grey) and torch.allclose(moved[..., 30:, :], grey)  # outside: fill
    # +90 degrees in image coordinates (y down) turns clockwise: torch.rot90 with k = -1
    turn = affine.matrix({"angle": 90 * one, "tx": 0 * one, "ty": 0 * one, "scale": one, "shear": 0 * one}, 32, 32)
    clockwise = torch.rot90(x, k=-1, dims=(2, 3))
    torch.testing.assert_close(warp(x, turn), clockwise, atol=1e-4, rtol=0)
    # the projective sampler's quarter turn: corner i goes where corner i + 1 was
    corners = image_corners(32, 32, x).roll(-1, dims=0).expand(2, 4, 2)
    projective = ProjectiveTransformation().matrix({"corners": corners}, 32, 32)
    torch.testing.assert_close(warp(x, projective), clockwise, atol=1e-4, rtol=0)


def test_the_solved_homography_maps_each_corner_to_its_target():
    g = torch.Generator().manual_seed(1)
    src = image_corners(32, 32, torch.empty(0)).expand(100, 4, 2) + torch.rand(100, 4, 2, generator=g) * 4
    dst = src * (0.8 + 0.4 * torch.rand(100, 1, 1, generator=g)) + torch.randn(100, 4, 2, generator=g) * 3
    torch.testing.assert_close(apply_matrix(homography_from_points(src, dst), src), dst, atol=1e-3, rtol=0)
    sampler = ProjectiveTransformation()
    params = sampler.sample(500, 32, 32, generator=g)
    matrix = sampler.matrix(params, 32, 32)
    corners = image_corners(32, 32, matrix).expand(500, 4, 2)
    torch.testing.assert_close(apply_matrix(matrix, corners), params["corners"], atol=1e-3, rtol=0)


def test_the_projective_draws_have_the_official_ranges():
    g = torch.Generator().manual_seed(2)
    params = ProjectiveTransformation().sample(4000, 32, 32, generator=g)
    moves = params["moves"]
    assert torch.equal(moves, moves.round()) and set(moves.unique().tolist()) == set(range(-4, 5))  # whole px, +-4
    assert params["scale"].min() >= 0.8 and params["scale"].max() <= 1.2
    assert set(params["turns"].tolist()) == {0, 1, 2, 3}
    # at 64 px the corners move by up to 8 px (scaled with the size, as +-28 at 224 in the ImageNet code)
    assert ProjectiveTransformation().sample(4000, 64, 64, generator=g)["moves"].abs().max() == 8


def test_the_affine_draws_have_the_official_ranges_and_targets():
    sampler = AffineTransformation()
    params = sampler.sample(4000, 32, 32, generator=torch.Generator().manual_seed(3))
    assert params["angle"].abs().max() <= 180 and params["angle"].abs().max() > 170
    assert params["tx"].abs().max() <= 0.2 * 32 and torch.equal(params["tx"], params["tx"].round())
    assert 0.7 <= params["scale"].min() and params["scale"].max() <= 1.3
    assert params["shear"].abs().max() <= 30
    target = sampler.encode(params, 32, 32)
    assert target.abs().max() <= 1 + 1e-6  # every entry in [-1, 1] (the decoder ends with a tanh)
    # the official encoding (cifar/affine/dataset.py) of one known draw
    one = torch.ones(1)
    known = {"angle": 90 * one, "tx": 6.4 * one, "ty": -3.2 * one, "scale": 1.3 * one, "shear": -15 * one}
    lo, hi = 0.7, 1.3
    official_scale = 1.3 * 2.0 / (hi - lo) - (lo + hi) / (hi - lo)
    expected = torch.tensor([[0.0, 1.0, 6.4 / 0.2 / 32, -3.2 / 0.2 / 32, official_scale, -15 * 2.0 / 60]])
    torch.testing.assert_close(sampler.encode(known, 32, 32), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=IDS)
@pytest.mark.parametrize("size", [32, 64])
def test_normalised_targets_decode_back_to_the_same_matrix(sampler, size):
    params = sampler.sample(1000, size, size, generator=torch.Generator().manual_seed(4))
    matrix = sampler.matrix(params, size, size)
    torch.testing.assert_close(sampler.decode(sampler.encode(params, size, size), size, size), matrix,
                               atol=2e-4 * size / 32, rtol=1e-4)


def test_the_projective_target_is_the_official_standardised_inverse_homography():
    sampler = ProjectiveTransformation()
    identity = {"corners": image_corners(32, 32, torch.empty(0)).expand(1, 4, 2)}
    # PIL coefficients of the identity (1, 0, 0, 0, 1, 0, 0, 0), standardised by mean (0,0,16,0,0,16,0,0) and std
    # (1,1,20,1,1,20,.015,.015)
    expected = torch.tensor([[1.0, 0.0, -0.8, 0.0, 1.0, -0.8, 0.0, 0.0]])
    torch.testing.assert_close(sampler.encode(identity, 32, 32), expected, atol=1e-5, rtol=0)
    # the same relative transformation at 64 px gives the same targets (translations and perspective terms rescaled)
    params = sampler.sample(200, 32, 32, generator=torch.Generator().manual_seed(5))
    doubled = {"corners": params["corners"] * 2}
    torch.testing.assert_close(sampler.encode(doubled, 64, 64), sampler.encode(params, 32, 32), atol=1e-3, rtol=1e-3)
    # the target is the map from the transformed image back to the original (what PIL's PERSPECTIVE reads)
    matrix = sampler.matrix(params, 32, 32)
    coeffs = sampler.encode(params, 32, 32) * torch.tensor(sampler.STD) + torch.tensor(sampler.MEAN)
    inverse = torch.cat([coeffs, torch.ones(200, 1)], 1).view(-1, 3, 3)
    corners = image_corners(32, 32, matrix).expand(200, 4, 2)
    torch.testing.assert_close(apply_matrix(inverse, params["corners"]), corners, atol=1e-3, rtol=0)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=IDS)
def test_draws_follow_the_generator_and_differ_per_sample(sampler):
    x = torch.rand(8, 3, 32, 32)
    a = sampler(x, generator=torch.Generator().manual_seed(6))
    b = sampler(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.images, b.images) and torch.equal(a.target, b.target)
    assert len({tuple(t.tolist()) for t in a.target}) == 8
    filled = sampler(torch.zeros(8, 3, 32, 32), generator=torch.Generator().manual_seed(7), fill=0.5).images
    assert filled.max() <= 0.5 + 1e-6 and (filled == 0.5).any()  # grey outside, blended at the border


def test_out_of_range_settings_are_refused():
    with pytest.raises(ValueError, match="degrees"):
        AffineTransformation(degrees=200)
    with pytest.raises(ValueError, match="scale"):
        ProjectiveTransformation(scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="crop_size"):
        PadCropFlip(crop_size=48, padding=4)(torch.zeros(1, 3, 32, 32))


def crop(image: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
    c = image[:, top:top + 32, left:left + 32]
    return c.flip(-1) if flip else c


def test_pad_crop_flip_cuts_whole_pixel_crops_of_the_padded_image():
    x = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8)
    views = PadCropFlip(crop_size=32, padding=4)(x, generator=torch.Generator().manual_seed(8))
    padded = torch.nn.functional.pad(x.float() / 255, (4, 4, 4, 4))
    found, flipped = set(), 0
    for view, image in zip(views, padded):
        matches = [(top, left, flip) for top in range(9) for left in range(9) for flip in (False, True)
                   if torch.equal(view, crop(image, top, left, flip))]
        assert len(matches) >= 1, "a view is not a crop of the padded image"
        found.add(matches[0][:2])
        flipped += matches[0][2]
    assert len(found) > 40  # offsets spread over the 9 x 9 grid
    assert 60 < flipped < 140  # flip p = 0.5
    assert math.isclose(views.max().item(), 1.0, abs_tol=0.01)
