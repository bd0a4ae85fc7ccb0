"""Scale- and shift-invariant depth losses of MiDaS (Ranftl et al., arXiv 1907.01341, section 5) and the
least-squares alignment used to evaluate relative depth.

A monocular estimator such as MiDaS predicts depth (there: disparity) only up to an unknown scale and
shift; its losses compare maps after normalising each one by its median ``t`` and mean absolute
deviation ``s`` (eq. 6-7), so that neither the scale nor the shift is learnt.
"""

from __future__ import annotations

import torch

__all__ = ["ssi_normalize", "ssi_trimmed_mae", "gradient_matching_loss", "align_scale_shift"]


def ssi_normalize(d: torch.Tensor) -> torch.Tensor:
    """``(d - t(d)) / s(d)`` per sample: ``t`` the median, ``s`` the mean absolute deviation from it
    (1907.01341 eq. 6-7). ``d``: (B, 1, H, W)."""
    flat = d.flatten(1)  # (B, HW)
    t = flat.median(dim=1, keepdim=True).values
    s = (flat - t).abs().mean(dim=1, keepdim=True).clamp_min(1e-6)
    return ((flat - t) / s).view_as(d)


def ssi_trimmed_mae(pred: torch.Tensor, target: torch.Tensor, trim: float = 0.2) -> torch.Tensor:
    """MiDaS' ``ssitrim`` (1907.01341 eq. 9): mean absolute difference of the normalised maps, without the
    ``trim`` fraction of largest residuals of each image. ``pred``, ``target``: (B, 1, H, W)."""
    residual = (ssi_normalize(pred) - ssi_normalize(target)).abs().flatten(1)  # (B, HW)
    keep = max(1, int(round(residual.shape[1] * (1.0 - trim))))
    return residual.sort(dim=1).values[:, :keep].mean()


def gradient_matching_loss(pred: torch.Tensor, target: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Multi-scale gradient matching of the normalised maps (1907.01341 eq. 11): ``R = pred^ - target^``,
    ``mean(|dR/dx| + |dR/dy|)`` summed over ``scales`` levels, each half the resolution of the last.
    ``pred``, ``target``: (B, 1, H, W)."""
    residual = ssi_normalize(pred) - ssi_normalize(target)  # (B, 1, H, W)
    total = residual.new_zeros(())
    for level in range(scales):
        r = residual[..., :: 2**level, :: 2**level]
        if min(r.shape[-2:]) < 2:
            break
        total = total + (r[..., :, 1:] - r[..., :, :-1]).abs().mean() + (r[..., 1:, :] - r[..., :-1, :]).abs().mean()
    return total


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``s * pred + t`` with the per-sample least-squares ``s, t`` against ``target`` (MiDaS' evaluation of
    relative depth, 1907.01341 section 6). ``pred``, ``target``, ``mask``: (B, 1, H, W)."""
    p, y = pred.flatten(1).double(), target.flatten(1).double()  # (B, N)
    w = torch.ones_like(p) if mask is None else mask.flatten(1).double()
    n = w.sum(1)
    sp, sy = (w * p).sum(1), (w * y).sum(1)
    spp, spy = (w * p * p).sum(1), (w * p * y).sum(1)
    det = (n * spp - sp * sp).clamp_min(1e-12)
    s = (n * spy - sp * sy) / det
    t = (sy - s * sp) / n.clamp_min(1)
    return (s[:, None] * p + t[:, None]).view_as(pred).to(pred.dtype)
