"""MiDaS' losses and the least-squares alignment against plain Python loops and hand-made edge cases (make mutate on
depth/losses.py): the multi-scale gradient matching level by level (its default of 4 scales, the stop at maps
under 2 pixels), the trimmed MAE when the trim leaves a single residual, and the alignment of a nearly flat
prediction and of a single known pixel."""

from __future__ import annotations

import pytest
import torch

from lit_digest.depth.losses import align_scale_shift, gradient_matching_loss, ssi_trimmed_mae


def _normalized(image: list[list[float]]) -> list[list[float]]:
    """(v - median) / mean |v - median| over one map (torch's median: the lower middle value)."""
    values = sorted(v for row in image for v in row)
    median = values[(len(values) - 1) // 2]
    mad = sum(abs(v - median) for v in values) / len(values)
    return [[(v - median) / mad for v in row] for row in image]


def _gradient_matching(pred: torch.Tensor, target: torch.Tensor, scales: int) -> float:
    """MiDaS eq. 11 one image and one level at a time: the mean |dR/dx| plus the mean |dR/dy| of the residual
    kept every 2^k-th row and column, for k < scales while the map has at least 2 rows and 2 columns."""
    per_level = [0.0] * scales
    for p, t in zip(pred[:, 0].tolist(), target[:, 0].tolist()):
        a, b = _normalized(p), _normalized(t)
        residual = [[x - y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]
        for k in range(scales):
            step = 2**k
            r = [row[::step] for row in residual[::step]]
            if len(r) < 2 or len(r[0]) < 2:
                break
            dx = [abs(row[j + 1] - row[j]) for row in r for j in range(len(row) - 1)]
            dy = [abs(r[i + 1][j] - r[i][j]) for i in range(len(r) - 1) for j in range(len(r[0]))]
            per_level[k] += (sum(dx) / len(dx) + sum(dy) / len(dy)) / len(pred)  # mean over the batch too
    return sum(per_level)


def test_gradient_matching_equals_a_per_level_loop():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 1, 5, 7), torch.rand(2, 1, 5, 7) + 1  # levels 5x7, 3x4, 2x2; 1x1 stops
    assert gradient_matching_loss(pred, target, scales=4).item() == pytest.approx(
        _gradient_matching(pred, target, 4), rel=1e-5)
    assert gradient_matching_loss(pred, target, scales=2).item() == pytest.approx(
        _gradient_matching(pred, target, 2), rel=1e-5)


def test_gradient_matching_defaults_to_four_scales():
    torch.manual_seed(1)
    pred, target = torch.randn(1, 1, 18, 20), torch.rand(1, 1, 18, 20) + 1  # a fifth level (2x2) would exist
    expected = _gradient_matching(pred, target, 4)
    assert expected != pytest.approx(_gradient_matching(pred, target, 5), rel=1e-3)
    assert gradient_matching_loss(pred, target).item() == pytest.approx(expected, rel=1e-5)


def test_trimmed_mae_keeps_at_least_the_smallest_residual():
    pred = torch.tensor([[[[0.0, 1.0, 2.0, 4.0]]]])
    target = torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]])
    # medians 1 and 1, mean absolute deviations 5/4 and 1: residuals 0.2, 0, 0.2, 0.4
    assert ssi_trimmed_mae(pred, target, trim=1.0).item() == pytest.approx(0.0, abs=1e-7)
    assert ssi_trimmed_mae(pred, target, trim=0.5).item() == pytest.approx(0.1, rel=1e-5)


def test_alignment_of_a_nearly_flat_prediction():
    torch.manual_seed(3)
    depth = torch.rand(2, 1, 2, 2) + 0.5
    pred = 1e-3 * depth + 0.2  # 4 pixels of spread ~1e-3: n * sum p^2 - (sum p)^2 is ~1e-6
    torch.testing.assert_close(align_scale_shift(pred, depth), depth)


def test_alignment_of_a_single_known_pixel_is_its_depth():
    pred, depth = torch.tensor([3.0, -1.0]).view(2, 1, 1, 1), torch.tensor([5.0, 0.5]).view(2, 1, 1, 1)
    torch.testing.assert_close(align_scale_shift(pred, depth), depth)
    mask = torch.zeros(1, 1, 2, 3, dtype=torch.bool)
    mask[0, 0, 1, 2] = True
    aligned = align_scale_shift(torch.randn(1, 1, 2, 3), torch.full((1, 1, 2, 3), 4.0), mask)
    assert aligned[0, 0, 1, 2].item() == pytest.approx(4.0)
