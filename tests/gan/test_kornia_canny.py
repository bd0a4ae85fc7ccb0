"""Canny edges beside kornia's: ``canny_magnitude`` equals kornia's blur, Sobel gradients and non-maximum
suppression away from the border and ties, and with our per-image quantile thresholds and hysteresis after it,
kornia's magnitude gives nearly the same sketch as ``canny_edges`` (docs/libraries.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lit_digest.gan.sketch import canny_edges, canny_magnitude

kornia = pytest.importorskip("kornia")


def kornia_then_our_thresholds(images: torch.Tensor, sigma: float = 1.0, low_quantile: float = 0.6,
                               high_quantile: float = 0.85) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    thin, _ = kornia.filters.canny(images, 1e-6, 1e-6, kernel_size=2 * radius + 1, sigma=(sigma, sigma),
                                   hysteresis=False, eps=0.0)
    edges = torch.zeros_like(thin)
    for b in range(thin.shape[0]):
        values = thin[b][thin[b] > 0]
        low, high = torch.quantile(values, torch.tensor([low_quantile, high_quantile]))
        tol = 1e-4 * values.max()
        weak, strong = (thin[b] >= low - tol) & (thin[b] > 0), thin[b] >= high - tol
        while True:  # hysteresis as canny_edges does it
            grown = weak & (F.max_pool2d(strong.float()[None], 3, 1, 1)[0] > 0)
            if torch.equal(grown, strong):
                break
            strong = grown
        edges[b] = strong.float()
    return edges


def test_canny_agrees_with_kornias_suppression_under_our_thresholds():
    g = torch.Generator().manual_seed(0)
    x = F.interpolate(torch.rand(4, 3, 8, 8, generator=g), size=64, mode="bicubic").clamp(0, 1)
    ours, theirs = canny_magnitude(x), kornia.filters.canny(x, 1e-6, 1e-6, kernel_size=7, sigma=(1.0, 1.0),
                                                            hysteresis=False, eps=0.0)[0]
    inside = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # kornia reflects the border, we replicate it
    kept = (ours > 0) & (theirs > 0)
    assert (ours - theirs)[inside][kept[inside]].abs().max() < 1e-4  # the same magnitude where both keep a pixel
    assert ((ours > 0) != (theirs > 0))[inside].float().mean() < 0.01  # and almost the same pixels kept
    ours, theirs = canny_edges(x), kornia_then_our_thresholds(x)
    both = (ours * theirs).sum()
    assert 2 * both / (ours.sum() + theirs.sum()) > 0.9  # F1 of one sketch against the other
    assert (ours != theirs).float().mean() < 0.02
    assert 0.02 < ours.mean() < 0.3  # a sketch, neither empty nor full
