"""Depth metrics for relative estimates: global error after alignment, and depth-edge accuracy.

The paper (arXiv 2105.14021, section 7) reports an ordinal error and D3R (depth discontinuity
disagreement ratio) next to RMSE and delta_1.25, after aligning each estimate to the ground truth.
Here: the estimate is first aligned by least squares (scale and shift); **RMSE** and **AbsRel**
measure the global structure; **depth-edge F1** measures the boundaries: an edge pixel is one whose
depth differs from a 4-neighbour's by more than ``threshold`` (relative, ``|log d_i - log d_j| >
log(1 + threshold)``); predicted and true edges match within ``tolerance`` pixels (precision: predicted
edges near a true one; recall: true edges near a predicted one), as boundary benchmarks do.

torchmetrics: the per-image numbers stay here because torchmetrics' regression metrics pool the pixels of a
whole batch, with no per-image reduction, mask or alignment; on one image's valid pixels ``rmse`` equals
``torchmetrics.functional.mean_squared_error(squared=False)`` and ``absrel`` its
``mean_absolute_percentage_error`` (the tests check both). Edge F1 matches edges within ``tolerance`` pixels,
which torchmetrics' binary F1 does not; at ``tolerance=0`` the two agree (tested). The means over images of an
epoch, and over processes, go through torchmetrics (``sample_means``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MetricCollection

from lit_digest.depth.losses import align_scale_shift

__all__ = ["depth_edges", "edge_f1", "depth_metrics", "sample_means"]


def depth_edges(depth: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """Boolean (B, 1, H, W): pixels with a relative depth jump above ``threshold`` to a 4-neighbour."""
    log_d = depth.clamp_min(1e-3).log()
    limit = math.log1p(threshold)
    edges = torch.zeros_like(depth, dtype=torch.bool)
    dx = (log_d[..., :, 1:] - log_d[..., :, :-1]).abs() > limit  # (B, 1, H, W-1)
    dy = (log_d[..., 1:, :] - log_d[..., :-1, :]).abs() > limit  # (B, 1, H-1, W)
    edges[..., :, 1:] |= dx
    edges[..., :, :-1] |= dx
    edges[..., 1:, :] |= dy
    edges[..., :-1, :] |= dy
    return edges


def edge_f1(pred_edges: torch.Tensor, true_edges: torch.Tensor, tolerance: int = 1) -> dict[str, torch.Tensor]:
    """Precision, recall and F1 (per sample, (B,)) of predicted edges against true ones within ``tolerance`` px."""
    k = 2 * tolerance + 1
    near_true = F.max_pool2d(true_edges.float(), k, 1, tolerance) > 0
    near_pred = F.max_pool2d(pred_edges.float(), k, 1, tolerance) > 0
    tp_pred = (pred_edges & near_true).flatten(1).sum(1).float()
    tp_true = (true_edges & near_pred).flatten(1).sum(1).float()
    precision = tp_pred / pred_edges.flatten(1).sum(1).clamp_min(1)
    recall = tp_true / true_edges.flatten(1).sum(1).clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return {"precision": precision, "recall": recall, "f1": f1}


def depth_metrics(pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor | None = None,
                  edge_threshold: float = 0.1, tolerance: int = 1) -> dict[str, torch.Tensor]:
    """Per-sample metrics (B,) of a relative estimate ``pred`` against the true ``depth`` (both (B, 1, H, W),
    ``pred`` resized to the depth's size first) over the pixels of ``mask`` (default: all):
    ``rmse``, ``absrel``, ``f1``, ``precision``, ``recall``."""
    if pred.shape[-2:] != depth.shape[-2:]:
        pred = F.interpolate(pred, size=depth.shape[-2:], mode="bilinear", align_corners=False)
    valid = torch.ones_like(depth, dtype=torch.bool) if mask is None else mask.bool()
    safe = torch.where(valid, depth, torch.ones_like(depth))
    aligned = align_scale_shift(pred, safe, valid)
    count = valid.flatten(1).sum(1).clamp_min(1)
    err = torch.where(valid, aligned - safe, torch.zeros_like(safe))
    out = {"rmse": (err.pow(2).flatten(1).sum(1) / count).sqrt(),
           "absrel": (err.abs() / safe).flatten(1).sum(1) / count}
    # edges only where every pixel of the 3x3 neighbourhood is known
    inside = -F.max_pool2d(-valid.float(), 3, 1, 1) > 0
    out.update(edge_f1(depth_edges(aligned, edge_threshold) & inside, depth_edges(safe, edge_threshold) & inside,
                       tolerance))
    return out


def sample_means(names: Iterable[str], prefix: str) -> MetricCollection:
    """A torchmetrics ``MeanMetric`` per name, logged as ``prefix + name``: update each with per-sample values
    ``(B,)`` (``collection[name].update(values)``) and log the collection (``self.log_dict(collection)``); Lightning
    then takes the mean over every sample of the epoch, summed and counted across processes under DDP."""
    return MetricCollection({name: MeanMetric() for name in names}, prefix=prefix, compute_groups=False)
