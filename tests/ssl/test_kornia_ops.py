"""Our image ops beside kornia's on equal parameters (benchmarks/kornia_ops.py times them; docs/libraries.md has
the decisions): AET's homography equals kornia's ``get_perspective_transform``; AET's ``warp``, now kornia's
``warp_perspective`` in our pixel convention, equals the plain grid sampling it replaced (written out here), for
affine and projective matrices and a fill colour; the views' colour jitter, blur, grayscale and solarisation equal
``kornia.enhance`` / ``kornia.filters`` / ``kornia.color`` with the same factors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lit_digest.ssl.aet.transforms import (
    AffineTransformation,
    ProjectiveTransformation,
    apply_matrix,
    homography_from_points,
    warp,
)
from lit_digest.ssl.views import _adjust_hue, _blend, _gaussian_blur, _grayscale

kornia = pytest.importorskip("kornia")

def grid_sampling_warp(x: torch.Tensor, matrix: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """The former ``warp``: each output pixel centre ``(j + 0.5, i + 0.5)`` mapped back by ``M^-1`` and sampled
    bilinearly, ``fill`` outside (blended at the border)."""
    b, _, h, w = x.shape
    to_unit = torch.tensor([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]])  # pixels -> [-1, 1]
    inverse = to_unit @ torch.linalg.inv(matrix) @ torch.linalg.inv(to_unit)
    grid = F.affine_grid(torch.eye(2, 3).expand(b, 2, 3), [b, 1, h, w], align_corners=False).view(b, h * w, 2)
    grid = apply_matrix(inverse, grid).view(b, h, w, 2)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def test_homography_from_four_points_is_kornias():
    t = ProjectiveTransformation()
    moved = t.sample(64, 32, 40, generator=torch.Generator().manual_seed(0))["corners"]
    corners = torch.tensor([[0.0, 0.0], [40, 0], [40, 32], [0, 32]]).expand_as(moved)
    theirs = kornia.geometry.transform.get_perspective_transform(corners, moved)
    torch.testing.assert_close(homography_from_points(corners, moved), theirs / theirs[:, 2:, 2:], atol=1e-4,
                               rtol=1e-4)


@pytest.mark.parametrize("transformation", [AffineTransformation(), ProjectiveTransformation()],
                         ids=["affine", "projective"])
def test_warp_through_kornia_equals_plain_grid_sampling(transformation):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 24, 28, generator=g)
    matrix = transformation.matrix(transformation.sample(16, 24, 28, generator=g), 24, 28)
    fill = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    ours = warp(x, matrix, fill)
    assert (ours - grid_sampling_warp(x, matrix, fill)).abs().max() < 1e-4
    assert (ours - x).abs().mean() > 0.05  # a real transformation, not the identity
    assert (warp(x, matrix, 0.5) - grid_sampling_warp(x, matrix, torch.tensor(0.5))).abs().max() < 1e-4


def test_view_ops_equal_kornias_with_the_same_factors():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(32, 3, 20, 20, generator=g)
    f = 0.6 + 0.8 * torch.rand(32, generator=g)  # per-sample factors, as ViewAugment draws them
    close = dict(atol=2e-4, rtol=0)  # kornia's grey is 0.299 R, ours torchvision's 0.2989 R
    torch.testing.assert_close(_blend(x, torch.zeros_like(x), f),
                               kornia.enhance.adjust_brightness_accumulative(x, f), **close)
    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(_blend(x, mean.expand_as(x), f),
                               kornia.enhance.adjust_contrast_with_mean_subtraction(x, f), **close)
    torch.testing.assert_close(_blend(x, _grayscale(x).expand_as(x), f),
                               kornia.enhance.adjust_saturation_with_gray_subtraction(x, f), **close)
    hue = (f - 1) / 4  # a fraction of a turn, up to 0.1
    torch.testing.assert_close(_adjust_hue(x, hue), kornia.enhance.adjust_hue(x, hue * 2 * math.pi), **close)
    torch.testing.assert_close(_grayscale(x), kornia.color.rgb_to_grayscale(x), **close)
    sigma = 0.1 + 1.5 * torch.rand(32, generator=g)
    torch.testing.assert_close(_gaussian_blur(x, sigma, 5),
                               kornia.filters.gaussian_blur2d(x, (5, 5), sigma[:, None].expand(-1, 2)), **close)
    torch.testing.assert_close(torch.where(x >= 0.5, 1.0 - x, x), kornia.enhance.solarize(x, 0.5))
