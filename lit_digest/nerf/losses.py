"""Losses and metrics: photometric MSE and PSNR (NeRF), the content and style losses of stage 2 (arXiv
2105.13016 section 3.2, official ``utils.py``: MSE of relu4_1 features, weight 1; MSE of the per-channel means
and standard deviations of relu1_1 ... relu4_1, weight 15), depth errors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lit_digest.nerf.hyper import feature_statistics

__all__ = ["psnr", "content_loss", "style_loss", "style_statistics", "depth_errors"]


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-10 log10(MSE)`` of colours in [0, 1] (bmild/nerf ``mse2psnr``)."""
    return -10.0 * torch.log10(F.mse_loss(pred, target).clamp(min=1e-10))


def style_statistics(features: list[torch.Tensor]) -> torch.Tensor:
    """``[mean_1, std_1, ..., mean_L, std_L]`` of feature maps ``(B, C_l, H_l, W_l)`` -> ``(B, 2 sum C_l)``
    (official ``RAIN.get_style_feat``)."""
    return torch.cat([feature_statistics(f) for f in features], -1)


def content_loss(output: list[torch.Tensor], content: list[torch.Tensor]) -> torch.Tensor:
    """MSE between the deepest feature maps ``(B, C, h, w)`` of the rendering and of the content."""
    return F.mse_loss(output[-1], content[-1])


def style_loss(output: list[torch.Tensor], style: list[torch.Tensor]) -> torch.Tensor:
    """MSE between the feature statistics of the rendering and of the style image (one style image, broadcast
    over the renderings)."""
    out_stats, style_stats = style_statistics(output), style_statistics(style)  # (B, 2 sum C), (1, 2 sum C)
    return F.mse_loss(out_stats, style_stats.expand_as(out_stats))


def depth_errors(pred: torch.Tensor, true: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean absolute and relative error of depth over the pixels whose true depth is finite (a surface)."""
    mask = torch.isfinite(true)
    if not mask.any():
        nan = torch.tensor(float("nan"), device=pred.device)
        return {"depth_mae": nan, "depth_absrel": nan}
    diff = (pred[mask] - true[mask]).abs()
    return {"depth_mae": diff.mean(), "depth_absrel": (diff / true[mask]).mean()}
