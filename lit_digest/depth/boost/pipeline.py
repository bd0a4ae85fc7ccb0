"""The boosting pipeline around any depth estimator (arXiv 2105.14021, sections 5-6; ``run.py`` and ``utils.py``
of compphoto/BoostingMonocularDepth): resolution search, double estimation, patch selection, patch merging.

- ``resolution_search`` (section 5, supplementary B): the edge map of the image (Sobel, thresholded at
  40% of its range) is dilated by the estimator's receptive field at growing resolutions ``R``; ``R_x``
  is the largest one where at most ``x`` of the pixels are farther than half a receptive field from
  any edge (``R_0``: every pixel has context; ``R_20``: 20% may have none).
- ``double_estimate`` (section 5): the estimate at the receptive-field size (consistent structure) and
  at ``R_x`` (detail) merged by the merge network.
- ``select_patches`` (section 6): at the target resolution, a grid of ``2 x RF`` tiles with stride
  ``0.75 RF``; tiles whose gradient density is below the image's are dropped, the others grow by
  ``RF / (12 factor)`` px per step while their density stays at least the image's.
- ``boost``: the base double estimate, then every patch's own double estimate merged into it (largest
  first) by the merge network, fitted to the base by a linear map, and blended with a Gaussian mask.

Sizes follow the official ratios, in units of the estimator's receptive field ``RF`` (384 px for
MiDaS there): patches are estimated at ``2 RF``; the resolution search works on cells of ``RF / 12``
px (32 px there) with ``R_max`` (3000 px there) bounding the whole-image resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lit_digest.depth.boost.guided import normalize01

__all__ = ["BoostSettings", "estimate", "edge_map", "resolution_search", "merge_estimates", "double_estimate",
           "select_patches", "blend_mask", "boost", "resize"]


@dataclass(frozen=True)
class BoostSettings:
    """The pipeline's numbers (official values in brackets, for MiDaS).

    Args:
        receptive_field: the estimator's receptive field in px, also its low resolution [384].
        merge_size: side of the merge network's input [1024].
        context_threshold: ``x`` of ``R_x`` [0.2].
        max_size: ``R_max``, the largest whole-image resolution [3000].
        max_upscale: the largest enlargement of the input the search may pick [3].
        max_resolution: cap on the target resolution of the patch stage [none].
        multiple_of: the estimator's input sides are rounded to a multiple of this [32].
        patches: run the patch stage (``False``: the ``R_x`` double estimate only, the paper's "R20" rows).
    """

    receptive_field: int = 384
    merge_size: int = 1024
    context_threshold: float = 0.2
    max_size: int = 3000
    max_upscale: float = 3.0
    max_resolution: float = math.inf
    multiple_of: int = 32
    patches: bool = True


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area average to shrink (no aliasing), bicubic to enlarge. ``x``: (B, C, H, W)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if size[0] <= x.shape[-2] and size[1] <= x.shape[-1]:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


def _fit(h: int, w: int, size: int, multiple: int) -> tuple[int, int]:
    """MiDaS' ``Resize(keep_aspect_ratio=True, resize_method="upper_bound", ensure_multiple_of=multiple)``: the
    longer side at ``size``, both sides rounded down to a multiple (at least one multiple)."""
    scale = size / max(h, w)
    return max(multiple, int(h * scale) // multiple * multiple), max(multiple, int(w * scale) // multiple * multiple)


@torch.no_grad()
def estimate(estimator: nn.Module, image: torch.Tensor, size: int, multiple_of: int = 32) -> torch.Tensor:
    """The estimator's depth for ``image`` (B, 3, H, W) in [0, 1] fed with its longer side at ``size`` px
    (aspect kept, sides rounded to ``multiple_of``), resized back to ``(H, W)`` and min-max normalised to
    [0, 1] per image, as the official ``estimatemidas``. The estimator runs in inference mode (its mode is
    restored after)."""
    h, w = image.shape[-2:]
    x = resize(image, _fit(h, w, size, multiple_of)).clamp(0, 1)
    was_training = estimator.training
    estimator.eval()
    try:
        return normalize01(resize(estimator(x).float(), (h, w)))
    finally:
        estimator.train(was_training)


def _gray(image: torch.Tensor) -> torch.Tensor:
    weights = image.new_tensor([0.2989, 0.5870, 0.1140]).view(1, 3, 1, 1)  # the official rgb2gray
    return (image * weights).sum(1, keepdim=True)  # (B, 1, H, W)


def _sobel(gray: torch.Tensor) -> torch.Tensor:
    """``|d/dx| + |d/dy|`` with 3x3 Sobel kernels, borders reflected (OpenCV's default)."""
    k = gray.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    padded = F.pad(gray, (1, 1, 1, 1), mode="reflect")
    gx = F.conv2d(padded, k.view(1, 1, 3, 3))
    gy = F.conv2d(padded, k.t().reshape(1, 1, 3, 3))
    return gx.abs() + gy.abs()


def edge_map(image: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Binary edges (B, 1, H, W): Sobel magnitude (resized to ``size`` first, if given) above 40% of its per-image
    range (``calculateprocessingres``)."""
    grad = _sobel(_gray(image))
    grad = resize(grad, size) if size is not None else grad
    lo, hi = grad.amin((1, 2, 3), keepdim=True), grad.amax((1, 2, 3), keepdim=True)
    return (grad >= lo + 0.4 * (hi - lo)).float()


def _dilate(mask: torch.Tensor, k: int) -> torch.Tensor:
    """OpenCV's ``dilate`` with a ``k x k`` box (window ``[x - k//2, x + (k-1)//2]``)."""
    if k <= 1:
        return mask
    return F.max_pool2d(F.pad(mask, (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2)), k, 1)


@torch.no_grad()
def resolution_search(image: torch.Tensor, settings: BoostSettings) -> tuple[int, float]:
    """``(R_x, patch_scale)`` for one image (1, 3, H, W): the whole-image resolution and the share of
    pixels within a quarter receptive field of an edge (``K`` of section 6)."""
    rf = settings.receptive_field
    h, w = image.shape[-2:]
    side = min(h, w)
    edges = edge_map(image, (side, side))  # the gradient resized to a square, as the official search
    kernel = 12  # cells per receptive field: 384 px / 32 px in the official code
    cell = rf / kernel
    limit = min(settings.max_size, settings.max_upscale * max(h, w))
    best, grid = rf, None
    n_cells = kernel
    while n_cells * cell < limit:
        grid = (F.adaptive_max_pool2d(edges, n_cells) >= 0.5).float()
        without_context = 1.0 - _dilate(grid, kernel).mean().item()
        if without_context > settings.context_threshold:
            break
        best = int(round(n_cells * cell))
        n_cells += kernel // 2  # steps of half a receptive field
    grid = grid if grid is not None else (F.adaptive_max_pool2d(edges, kernel) >= 0.5).float()
    patch_scale = _dilate(grid, kernel // 4).mean().item()
    return best, patch_scale


@torch.no_grad()
def merge_estimates(merge_net: nn.Module, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The merge network on two estimates (B, 1, s, s): each min-max normalised to [-1, 1] (``set_input``),
    output mapped back to [0, 1]."""
    x = torch.cat([normalize01(low), normalize01(high)], 1) * 2 - 1
    return (merge_net(x) + 1) / 2


@torch.no_grad()
def double_estimate(estimator: nn.Module, merge_net: nn.Module, image: torch.Tensor, low: int, high: int,
                    settings: BoostSettings) -> torch.Tensor:
    """Merged estimate (B, 1, s, s) in [0, 1] of the estimates at resolutions ``low`` and ``high``, both resized
    to the merge size ``s`` (``doubleestimate``)."""
    size = (settings.merge_size, settings.merge_size)
    e_low = resize(estimate(estimator, image, low, settings.multiple_of), size)
    e_high = resize(estimate(estimator, image, high, settings.multiple_of), size)
    return normalize01(merge_estimates(merge_net, e_low, e_high))


def _integral(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x.double().cumsum(0).cumsum(1), (1, 0, 1, 0))  # (H + 1, W + 1)


def _density(integral: torch.Tensor, x: int, y: int, w: int, h: int) -> float:
    total = integral[y + h, x + w] - integral[y, x + w] - integral[y + h, x] + integral[y, x]
    return float(total) / (w * h)


def select_patches(image: torch.Tensor, receptive_field: int, factor: float = 1.0) -> list[tuple[int, int, int, int]]:
    """Patches ``(x, y, w, h)`` of one image (1, 3, H, W) at the target resolution, largest first
    (``generatepatchs`` and ``adaptiveselection``)."""
    grad = _sobel(_gray(image))[0, 0]
    positive = grad[grad > 1e-6]  # above rounding noise
    if positive.numel() == 0:
        return []  # a flat image (the official code divides by zero here)
    grad = torch.where(grad < positive.mean(), torch.zeros_like(grad), grad)
    image_density = grad.mean().item()
    integral = _integral(grad)
    height, width = grad.shape
    half = receptive_field  # tiles of 2 RF (``base_size = 2 RF``, ``blsize = base_size / 2``)
    stride = int(round(0.75 * half))
    step = max(1, int(receptive_field / 12 / factor))  # ``int(32 / factor)`` for RF = 384
    patches = []
    for cx in range(half, width - half, stride):
        for cy in range(half, height - half, stride):
            x, y, w, h = cx - half, cy - half, 2 * half, 2 * half
            if _density(integral, x, y, w, h) < image_density:
                continue  # a flat tile: nothing to gain
            while True:  # grow while the tile stays at least as detailed as the image
                nx, ny, nw, nh = x - step // 2, y - step // 2, w + step, h + step
                if nx < 0 or ny < 0 or ny + nh >= height or nx + nw >= width:
                    break
                if _density(integral, nx, ny, nw, nh) < image_density:
                    break
                x, y, w, h = nx, ny, nw, nh
            patches.append((x, y, w, h))
    return sorted(patches, key=lambda p: p[2], reverse=True)


def blend_mask(h: int, w: int, device=None) -> torch.Tensor:
    """``generatemask``: ones inside a 15% margin, blurred by a Gaussian of sigma ``h / 16``, scaled to [0, 1]."""
    mask = torch.zeros(1, 1, h, w, dtype=torch.float32, device=device)  # the kernel's dtype, whatever the default
    mask[..., int(0.15 * h): h - int(0.15 * h), int(0.15 * w): w - int(0.15 * w)] = 1
    sigma = max(h / 16, 1e-3)
    radius = int(math.ceil(2 * max(int(h / 16), 1)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum()).view(1, 1, 1, -1)
    pad = min(radius, h - 1, w - 1)
    blurred = mask
    if pad > 0:
        g = g[..., radius - pad: radius + pad + 1]
        blurred = F.conv2d(F.pad(mask, (pad, pad, 0, 0), mode="reflect"), g)
        blurred = F.conv2d(F.pad(blurred, (0, 0, pad, pad), mode="reflect"), g.transpose(-1, -2))
    return normalize01(blurred)


def _linear_fit(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``a * source + b`` with the least-squares ``a, b`` against ``target`` (``np.polyfit(deg=1)``)."""
    s, t = source.flatten().double(), target.flatten().double()
    a = ((s - s.mean()) * (t - t.mean())).sum() / ((s - s.mean()).pow(2).sum()).clamp_min(1e-12)
    return (a * (source.double() - s.mean()) + t.mean()).to(source.dtype)


@torch.no_grad()
def boost(estimator: nn.Module, merge_net: nn.Module, image: torch.Tensor,
          settings: BoostSettings) -> dict[str, torch.Tensor | int | list]:
    """The whole method on one image (1, 3, H, W) in [0, 1]. Returns ``depth`` (1, 1, H, W) in [0, 1]
    (relative, the estimator's convention), ``base`` (the ``R_x`` double estimate at (H, W)), ``resolution``
    (``R_x``), ``patches`` (``(x, y, w, h)`` at the target resolution) and ``target`` (that resolution's
    ``(height, width)``; absent without a patch stage)."""
    if image.shape[0] != 1:
        raise ValueError(f"boost runs one image at a time (its resolutions depend on it), got a batch of "
                         f"{image.shape[0]}")
    h, w = image.shape[-2:]
    rf = settings.receptive_field
    r_x, patch_scale = resolution_search(image, settings)
    base = double_estimate(estimator, merge_net, image, rf, r_x, settings)
    out = {"resolution": r_x, "base": resize(base, (h, w)), "patches": []}
    if not settings.patches or settings.max_resolution < r_x:
        out["depth"] = out["base"]
        return out
    factor = max(min(1.0, 4 * patch_scale * r_x / settings.max_size), 0.2)  # section 6's K
    target = min(2 * r_x / factor, settings.max_resolution)
    th, tw = (int(round(target * h / max(h, w))), int(round(target * w / max(h, w))))
    big = resize(image, (th, tw)).clamp(0, 1)
    patches = select_patches(big, rf, factor)
    base_big = resize(base, (th, tw))
    updated = base_big.clone()
    size = (settings.merge_size, settings.merge_size)
    for x, y, pw, ph in patches:
        patch_estimate = double_estimate(estimator, merge_net, big[..., y: y + ph, x: x + pw], rf, 2 * rf, settings)
        base_crop = resize(base_big[..., y: y + ph, x: x + pw], size)
        merged = merge_estimates(merge_net, base_crop, patch_estimate)
        merged = resize(_linear_fit(merged, base_crop), (ph, pw))
        mask = blend_mask(ph, pw, image.device)
        region = updated[..., y: y + ph, x: x + pw]
        updated[..., y: y + ph, x: x + pw] = region * (1 - mask) + merged * mask
    out.update(depth=resize(updated, (h, w)), patches=patches, target=(th, tw))
    return out
