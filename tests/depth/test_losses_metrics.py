"""MiDaS losses are blind to scale and shift and to nothing else; the alignment and the depth-edge F1 give known
answers on constructed maps; masks are honoured."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lit_digest.depth.losses import align_scale_shift, gradient_matching_loss, ssi_normalize, ssi_trimmed_mae
from lit_digest.depth.metrics import depth_edges, depth_metrics, edge_f1


def test_ssi_losses_ignore_scale_and_shift_only():
    torch.manual_seed(0)
    target = torch.rand(3, 1, 16, 16) + 1
    pred = torch.randn(3, 1, 16, 16)
    for loss in (ssi_trimmed_mae, gradient_matching_loss):
        assert loss(3.0 * target + 7.0, target) < 1e-5
        assert loss(2.5 * pred - 1.0, target) == pytest.approx(loss(pred, target).item(), rel=1e-4)
        assert loss(pred, target) > 0.1
    normalized = ssi_normalize(target)
    assert torch.allclose(normalized.flatten(1).median(1).values, torch.zeros(3), atol=1e-6)


def test_trimmed_mae_equals_a_per_image_loop():
    torch.manual_seed(2)
    pred, target = torch.randn(3, 1, 9, 7), torch.rand(3, 1, 9, 7) + 1
    losses = []
    for p, t in zip(pred.flatten(1).tolist(), target.flatten(1).tolist()):
        normalized = []
        for values in (p, t):
            median = sorted(values)[(len(values) - 1) // 2]  # torch's median: the lower middle value
            mad = sum(abs(v - median) for v in values) / len(values)
            normalized.append([(v - median) / mad for v in values])
        residuals = sorted(abs(a - b) for a, b in zip(*normalized))
        keep = round(len(residuals) * 0.8)
        losses.append(sum(residuals[:keep]) / keep)
    assert ssi_trimmed_mae(pred, target, trim=0.2).item() == pytest.approx(sum(losses) / 3, rel=1e-5)


def test_alignment_recovers_an_affine_map_and_respects_the_mask():
    torch.manual_seed(1)
    depth = torch.rand(2, 1, 8, 8) + 0.5
    pred = (depth - 0.3) / 4.0
    torch.testing.assert_close(align_scale_shift(pred, depth), depth)
    mask = torch.ones_like(depth, dtype=torch.bool)
    mask[..., :2, :] = False
    corrupted = pred.clone()
    corrupted[..., :2, :] = 50.0  # outside the mask: must not matter
    torch.testing.assert_close(align_scale_shift(corrupted, depth, mask)[mask], depth[mask])


def _step_scene(shift: int = 0) -> torch.Tensor:
    depth = torch.full((1, 1, 20, 20), 4.0)
    depth[..., :, 10 + shift:] = 8.0
    return depth


def test_depth_edges_and_f1_on_a_step():
    truth = _step_scene()
    edges = depth_edges(truth)
    assert edges[0, 0, :, 9:11].all() and edges.sum() == 40  # both sides of the jump, every row
    assert edge_f1(edges, edges)["f1"].item() == 1.0
    assert edge_f1(depth_edges(_step_scene(1)), edges, tolerance=1)["f1"].item() == 1.0  # within the tolerance
    assert edge_f1(depth_edges(_step_scene(3)), edges, tolerance=1)["f1"].item() == 0.0
    blurred = F.avg_pool2d(F.pad(truth, (3, 3, 3, 3), mode="replicate"), 7, 1)
    f1 = edge_f1(depth_edges(blurred), edges)
    assert f1["recall"].item() == 1.0 and f1["precision"].item() < 0.7  # a wide, soft edge: many false edges


def test_depth_metrics_known_values_and_masks():
    truth = _step_scene()
    perfect = depth_metrics(0.1 * truth - 2.0, truth)  # any affine map of the truth
    assert perfect["rmse"].item() < 1e-5 and perfect["absrel"].item() < 1e-6 and perfect["f1"].item() == 1.0
    flat = depth_metrics(torch.rand(1, 1, 10, 10), truth)  # resized to the truth's size first
    assert flat["rmse"].item() > 1.0
    mask = torch.ones_like(truth, dtype=torch.bool)
    mask[..., :, 15:] = False
    broken = truth.clone()
    broken[..., :, 15:] = 0.0  # unknown depth (as Middlebury's holes)
    masked = depth_metrics(0.5 * truth, broken, mask=mask)
    assert masked["rmse"].item() < 1e-5 and masked["f1"].item() == 1.0
