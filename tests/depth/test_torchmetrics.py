"""The depth metrics beside torchmetrics: per-image RMSE and AbsRel equal torchmetrics' functional metrics on each
image's valid pixels, edge F1 at tolerance 0 equals torchmetrics' binary F1, and the epoch means that the depth
modules log (``sample_means``) are the means over every sample of every batch."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional import mean_absolute_percentage_error, mean_squared_error
from torchmetrics.functional.classification import binary_f1_score, binary_precision, binary_recall

from lit_digest.depth.losses import align_scale_shift
from lit_digest.depth.metrics import depth_edges, depth_metrics, edge_f1, sample_means


def test_rmse_and_absrel_equal_torchmetrics_on_each_images_valid_pixels():
    g = torch.Generator().manual_seed(0)
    depth = 0.5 + 4 * torch.rand(3, 1, 20, 24, generator=g)
    pred = 2 * depth + 1 + 0.3 * torch.randn(3, 1, 20, 24, generator=g)
    mask = torch.rand(3, 1, 20, 24, generator=g) > 0.3
    got = depth_metrics(pred, depth, mask=mask)
    aligned = align_scale_shift(pred, depth, mask)
    for b in range(3):
        p, t = aligned[b][mask[b]], depth[b][mask[b]]
        torch.testing.assert_close(got["rmse"][b], mean_squared_error(p, t, squared=False), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(got["absrel"][b], mean_absolute_percentage_error(p, t), rtol=1e-4, atol=1e-6)


def test_edge_f1_at_tolerance_zero_is_torchmetrics_binary_f1():
    g = torch.Generator().manual_seed(1)
    true = depth_edges(1 + torch.rand(4, 1, 16, 16, generator=g), 0.3)
    pred = true ^ (torch.rand(4, 1, 16, 16, generator=g) > 0.8)  # some edges missed, some made up
    got = edge_f1(pred, true, tolerance=0)
    for b in range(4):
        torch.testing.assert_close(got["precision"][b], binary_precision(pred[b].int(), true[b].int()))
        torch.testing.assert_close(got["recall"][b], binary_recall(pred[b].int(), true[b].int()))
        torch.testing.assert_close(got["f1"][b], binary_f1_score(pred[b].int(), true[b].int()))
    assert (edge_f1(pred, true, tolerance=1)["f1"] >= got["f1"]).all()  # near misses count with a tolerance


def test_sample_means_average_every_sample_of_every_batch():
    means = sample_means(["rmse", "f1"], "val/")
    batches = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0])]  # unequal batches: not the mean of means
    for values in batches:
        means["rmse"].update(values)
        means["f1"].update(values / 10)
    out = means.compute()
    assert set(out) == {"val/rmse", "val/f1"}
    assert float(out["val/rmse"]) == pytest.approx(16 / 4) and float(out["val/f1"]) == pytest.approx(1.6 / 4)
