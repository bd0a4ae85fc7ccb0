"""Colour maps for training: the photo simplified to regions of one colour each.

SC-FEGAN (arXiv 1902.06838, section 3.1) smooths the photo with a median filter and twenty rounds of
bilateral filtering, splits the face into its parts with the GFC face parser, and paints each part in
its median colour, so that the network learns to follow flat colour strokes. GFC's weights are not
public; regions here come from the smoothed photo itself: its colours are quantised by k-means
(``clusters`` colours), the label map is cleaned by a few rounds of majority vote, and each
4-connected component of one label is a region. A parser's label map can be given instead
(``labels``): then its parts are the regions, as in the paper.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

__all__ = ["median_filter", "bilateral_filter", "quantise", "colour_regions", "fill_median", "colour_map"]


def _patches(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B, C, size * size, H, W)``: each pixel's neighbourhood, replicate-padded."""
    b, c, h, w = x.shape
    r = size // 2
    cols = F.unfold(F.pad(x, (r, r, r, r), mode="replicate"), size)  # (B, C * size^2, H * W)
    return cols.view(b, c, size * size, h, w)


def median_filter(images: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Per-channel median over ``size x size`` windows: ``(B, C, H, W) -> (B, C, H, W)``."""
    return _patches(images, size).median(dim=2).values


def bilateral_filter(images: torch.Tensor, size: int = 5, sigma_space: float = 1.5, sigma_colour: float = 0.1,
                     iterations: int = 1) -> torch.Tensor:
    """Edge-preserving smoothing (Tomasi & Manduchi 1998) of ``(B, C, H, W)`` images in [0, 1]: each pixel
    becomes the average of its window weighted by ``exp(-d^2 / 2 sigma_space^2 - |I_p - I_q|^2 / 2 sigma_colour^2)``,
    repeated ``iterations`` times."""
    r = size // 2
    offsets = torch.arange(-r, r + 1, device=images.device, dtype=images.dtype)
    spatial = torch.exp(-(offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2) / (2 * sigma_space ** 2))
    spatial = spatial.reshape(1, size * size, 1, 1)
    x = images
    for _ in range(iterations):
        window = _patches(x, size)  # (B, C, K, H, W)
        distance = (window - x.unsqueeze(2)).pow(2).sum(1)  # (B, K, H, W)
        weights = spatial * torch.exp(-distance / (2 * sigma_colour ** 2))
        x = (window * weights.unsqueeze(1)).sum(2) / weights.sum(1, keepdim=True)
    return x


def quantise(image: torch.Tensor, clusters: int = 8, iterations: int = 10) -> torch.Tensor:
    """k-means labels of the pixels of one ``(C, H, W)`` image, deterministically initialised at luminance
    quantiles: ``(H, W)`` long in ``[0, clusters)``."""
    c, h, w = image.shape
    pixels = image.reshape(c, -1).T  # (H * W, C)
    order = pixels.mean(1).argsort()
    picks = order[torch.linspace(0, len(order) - 1, clusters).round().long()]
    centres = pixels[picks].clone()  # (K, C)
    labels = torch.zeros(len(pixels), dtype=torch.long)
    for _ in range(iterations):
        labels = torch.cdist(pixels, centres).argmin(1)
        for k in range(clusters):
            members = pixels[labels == k]
            if len(members):
                centres[k] = members.mean(0)
    return labels.view(h, w)


def _majority(labels: torch.Tensor, classes: int, size: int = 5, rounds: int = 2) -> torch.Tensor:
    """Each pixel takes the most frequent label of its window, ``rounds`` times: ``(H, W) -> (H, W)``."""
    for _ in range(rounds):
        one_hot = F.one_hot(labels, classes).permute(2, 0, 1).float()[None]  # (1, K, H, W)
        votes = F.avg_pool2d(F.pad(one_hot, [size // 2] * 4, mode="replicate"), size, stride=1)
        labels = votes[0].argmax(0)
    return labels


def colour_regions(image: torch.Tensor, clusters: int = 8) -> torch.Tensor:
    """Regions of one smoothed ``(C, H, W)`` image: the 4-connected components of its cleaned k-means labels,
    ``(H, W)`` long with labels ``0 .. R - 1``."""
    labels = _majority(quantise(image, clusters), clusters).numpy()
    regions = np.zeros(labels.shape, np.int64)
    count = 0
    for k in np.unique(labels):
        components, n = ndimage.label(labels == k)  # 4-connectivity
        regions[components > 0] = components[components > 0] - 1 + count
        count += n
    return torch.from_numpy(regions)


def fill_median(image: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Each region of ``regions`` ``(H, W)`` painted in the per-channel median colour of ``image`` ``(C, H, W)``
    there."""
    c = image.shape[0]
    flat_labels = regions.flatten()
    flat = image.reshape(c, -1)
    out = torch.empty_like(flat)
    order = flat_labels.argsort()
    counts = torch.bincount(flat_labels)
    for idx in order.split(counts[counts > 0].tolist()):
        out[:, idx] = flat[:, idx].median(dim=1, keepdim=True).values
    return out.view_as(image)


@torch.no_grad()
def colour_map(image: torch.Tensor, clusters: int = 8, bilateral_iterations: int = 20, median_size: int = 3,
               labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SC-FEGAN's colour map of one ``(C, H, W)`` image in [0, 1]: median filter, ``bilateral_iterations``
    bilateral filters, regions (``colour_regions``, or the parser's ``labels`` ``(H, W)``), each filled with the
    median colour of the smoothed image in it. Returns ``(colour map (C, H, W), regions (H, W))``."""
    smooth = median_filter(image[None].float(), median_size)
    smooth = bilateral_filter(smooth, iterations=bilateral_iterations)[0]
    regions = labels.long() if labels is not None else colour_regions(smooth, clusters)
    return fill_median(smooth, regions), regions
