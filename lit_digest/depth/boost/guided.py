"""The guided filter and the paper's construction of the merge network's training inputs and target.

Guided filter (He, Sun, Tang, "Guided Image Filtering", ECCV 2010; TPAMI 2013, Algorithm 1): in
every ``(2r + 1)^2`` window the output is a linear function ``a * I + b`` of the guide ``I``, fitted
to the source ``p`` by ridge regression (``eps``), with ``a`` and ``b`` averaged over the windows
covering each pixel. With a tiny ``eps`` it transfers the guide's edges and fine structure onto
the source's local mean and contrast.

Training pairs (compphoto/BoostingMonocularDepth, ``pix2pix/data/depthmerge_dataset.py`` with the
crops of ``dataset_prepare/generatecrops.m``; arXiv 2105.14021 section 4): for a crop of an image,
``outer`` is the crop of the low-resolution whole-image estimate, ``inner`` the crop's own estimate
at a high resolution, ``reference`` the target (there: the crop of a whole-image estimate at a higher
resolution, since no ground truth exists; here it may also be the exact depth). Then

    inner  <- GF(guide = reference, source = inner, r = 64, eps = 1e-8)
    outer  <- GF(guide = outer,     source = reference, r = 64, eps = 1e-8)

so ``inner`` carries the reference's details on the high-resolution estimate's (inconsistent) low
frequencies, ``outer`` the low-resolution estimate's (blurred) edges on the reference's low
frequencies: the network learns to take the structure of the one and the details of the other.
All maps are min-max normalised to [0, 1] before the filter and to [-1, 1] after (as there); the
official radius is 64 px on 672-px crops (about a tenth of the side), ``guided_radius`` scales it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["box_mean", "guided_filter", "normalize01", "merge_training_pair", "official_radius"]


def _box_sum(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum over ``[i - r, i + r]`` along ``dim``, cut at the borders: a difference of cumulative sums."""
    n = x.shape[dim]
    c = F.pad(x.cumsum(dim), (1, 0) if dim == -1 else (0, 0, 1, 0))  # c[i] = sum of x[:i]
    index = torch.arange(n, device=x.device)
    hi = (index + radius + 1).clamp(max=n)
    lo = (index - radius).clamp(min=0)
    return c.index_select(dim, hi) - c.index_select(dim, lo)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the ``(2r + 1)^2`` window around each pixel, the window cut at the borders (B, C, H, W).
    Cumulative sums in float64 (He et al.'s O(1)-per-pixel box filter), so that the cost does not grow with
    ``r`` and ``E[I^2] - E[I]^2`` keeps its precision at eps = 1e-8."""
    h, w = x.shape[-2:]
    ones = x.new_ones(1, 1, h, w, dtype=torch.float64)
    count = _box_sum(_box_sum(ones, radius, -1), radius, -2)
    total = _box_sum(_box_sum(x.double(), radius, -1), radius, -2)
    return (total / count).to(x.dtype)


def guided_filter(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter with a single-channel guide: ``guide``, ``source`` (B, 1, H, W)."""
    mean_i, mean_p = box_mean(guide, radius), box_mean(source, radius)
    cov_ip = box_mean(guide * source, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)  # (B, 1, H, W)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def normalize01(x: torch.Tensor) -> torch.Tensor:
    """Per-sample min-max normalisation to [0, 1] (a flat map becomes 0). ``x``: (B, 1, H, W)."""
    flat = x.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(x)


def official_radius(size: int) -> int:
    """The official radius (64 px at 672 px) scaled to crops of ``size`` px."""
    return max(1, round(64 * size / 672))


def merge_training_pair(outer: torch.Tensor, inner: torch.Tensor, reference: torch.Tensor, radius: int,
                        eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Network input ``(B, 2, H, W)`` (outer, inner) in [-1, 1] and target ``(B, 1, H, W)`` in [-1, 1] from the
    three maps (B, 1, H, W) of one crop, by the construction of the module docstring."""
    outer, inner, reference = normalize01(outer), normalize01(inner), normalize01(reference)
    inner = guided_filter(reference, inner, radius, eps)
    outer = guided_filter(outer, reference, radius, eps)
    x = torch.cat([normalize01(outer), normalize01(inner)], 1) * 2 - 1
    return x, reference * 2 - 1
