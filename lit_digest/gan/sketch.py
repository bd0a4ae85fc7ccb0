"""Sketches for training: edge maps of the face photos (1 = line, 0 = background).

SC-FEGAN (arXiv 1902.06838, section 3.1) draws its training sketches with the HED edge detector
(Xie & Tu, "Holistically-Nested Edge Detection", arXiv 1504.06375). HED needs trained weights, so the
default here is the classical Canny detector (Canny 1986), which needs none: Gaussian smoothing, Sobel
gradients, non-maximum suppression across the edge, and hysteresis between two thresholds. The
thresholds are quantiles of the gradient magnitude on the thinned edges, so faces of any contrast give
sketches of similar density. ``HED`` runs the original network when its weights are given (the
BSDS500 weights converted by sniklaus/pytorch-hed load as they are).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from lit_digest.core.download import missing_data_error

__all__ = ["luminance", "canny_magnitude", "canny_edges", "HED", "load_hed", "HED_URL"]

HED_URL = "http://content.sniklaus.com/github/pytorch-hed/network-bsds500.pytorch"


def luminance(images: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma of ``(B, 3, H, W)`` (or ``(B, 1, H, W)``) images: ``(B, 1, H, W)``."""
    if images.shape[1] == 1:
        return images
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def _gaussian_kernel(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return k / k.sum()  # (2r + 1,)


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``out[..., i, j] = x[..., i + dy, j + dx]``, zero outside."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    return padded[..., 1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]


@torch.no_grad()
def canny_magnitude(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Canny's first three steps on ``(B, C, H, W)`` images: Gaussian blur (``sigma``, radius ``3 sigma``,
    replicated border), Sobel gradients, and non-maximum suppression across the edge in 4 direction bins (a
    pixel stays when no neighbour along its gradient is larger). Returns the gradient magnitude on the kept
    pixels, 0 elsewhere: ``(B, 1, H, W)``.

    kornia's ``filters.canny(..., hysteresis=False)`` computes the same map up to its reflected border and
    OpenCV's tie rule (benchmarks/kornia_ops.py, docs/libraries.md); this one stays, being as fast on the CPU."""
    x = luminance(images.float())
    if sigma > 0:
        k = _gaussian_kernel(sigma, x.device, x.dtype)
        r = k.numel() // 2
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    sobel_x = x.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, sobel_x)
    gy = F.conv2d(padded, sobel_x.transpose(2, 3))
    magnitude = torch.hypot(gx, gy)  # (B, 1, H, W)

    # non-maximum suppression: keep a pixel that is a maximum along its gradient direction (4 bins)
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180
    direction = ((angle + 22.5) // 45).long() % 4  # 0: horizontal gradient, 1: 45, 2: vertical, 3: 135 degrees
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    for d, (dy, dx) in enumerate([(0, 1), (1, 1), (1, 0), (1, -1)]):
        is_max = (magnitude >= _shift(magnitude, dy, dx)) & (magnitude >= _shift(magnitude, -dy, -dx))
        keep |= (direction == d) & is_max
    return magnitude * keep * (magnitude > 1e-6)


@torch.no_grad()
def canny_edges(images: torch.Tensor, sigma: float = 1.0, low_quantile: float = 0.6,
                high_quantile: float = 0.85) -> torch.Tensor:
    """Canny edges of ``(B, C, H, W)`` images in [0, 1] (or [-1, 1]; only gradients matter): ``(B, 1, H, W)``
    in {0, 1}.

    The high and low thresholds are the ``high_quantile`` and ``low_quantile`` of the gradient magnitude
    over the pixels that survive non-maximum suppression (``canny_magnitude``), per image; a weak pixel (above
    the low threshold) is kept when it connects to a strong one (above the high threshold) through weak pixels.
    """
    if not 0.0 <= low_quantile <= high_quantile < 1.0:
        raise ValueError(f"canny needs 0 <= low_quantile <= high_quantile < 1, got {low_quantile}, {high_quantile}")
    thin = canny_magnitude(images, sigma)

    edges = torch.zeros_like(thin)
    for b in range(thin.shape[0]):
        values = thin[b][thin[b] > 0]
        if values.numel() == 0:
            continue
        low, high = torch.quantile(values, torch.tensor([low_quantile, high_quantile], device=values.device))
        # ties within rounding count as equal: the two sides of a straight edge differ by float noise after
        # the separable blur, and a threshold falling between them would keep one side and drop the other
        tol = 1e-4 * values.max()
        weak = (thin[b] >= low - tol) & (thin[b] > 0)
        strong = thin[b] >= high - tol
        while True:  # hysteresis: grow the strong edges through 8-connected weak pixels
            grown = weak & (F.max_pool2d(strong.float()[None], 3, 1, 1)[0] > 0)
            if torch.equal(grown, strong):
                break
            strong = grown
        edges[b] = strong.float()
    return edges


class HED(nn.Module):
    """Holistically-nested edge detection (Xie & Tu, arXiv 1504.06375): VGG-16's five conv stages, a 1x1
    score of each, upsampled and fused by a 1x1 conv and a sigmoid. ``(B, 3, H, W)`` RGB in [0, 1] ->
    ``(B, 1, H, W)`` edge probabilities. The input goes in as Caffe's HED expects it (BGR, 0-255, minus the
    BSDS mean). The layout follows sniklaus/pytorch-hed, so its converted BSDS500 weights load
    (``load_hed``)."""

    BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)

    def __init__(self) -> None:
        super().__init__()

        def stage(c_in: int, c_out: int, convs: int, pool: bool) -> nn.Sequential:
            layers: list[nn.Module] = [nn.MaxPool2d(2, 2)] if pool else []
            for i in range(convs):
                layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, 1, 1), nn.ReLU()]
            return nn.Sequential(*layers)

        self.stages = nn.ModuleList([stage(3, 64, 2, False), stage(64, 128, 2, True), stage(128, 256, 3, True),
                                     stage(256, 512, 3, True), stage(512, 512, 3, True)])
        self.scores = nn.ModuleList([nn.Conv2d(c, 1, 1) for c in (64, 128, 256, 512, 512)])
        self.combine = nn.Sequential(nn.Conv2d(5, 1, 1), nn.Sigmoid())

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) RGB in [0, 1]
        mean = images.new_tensor(self.BGR_MEAN).view(1, 3, 1, 1)
        x = images.flip(1) * 255.0 - mean
        h, w = images.shape[-2:]
        side = []
        for stage, score in zip(self.stages, self.scores):
            x = stage(x)
            side.append(F.interpolate(score(x), size=(h, w), mode="bilinear", align_corners=False))
        return self.combine(torch.cat(side, 1))  # (B, 1, H, W)


_SNIKLAUS_NAMES = {"VggOne": "stages.0", "VggTwo": "stages.1", "VggThr": "stages.2", "VggFou": "stages.3",
                   "VggFiv": "stages.4", "ScoreOne": "scores.0", "ScoreTwo": "scores.1", "ScoreThr": "scores.2",
                   "ScoreFou": "scores.3", "ScoreFiv": "scores.4", "Combine": "combine"}


def load_hed(path: str | os.PathLike) -> HED:
    """``HED`` with weights from ``path``: a state_dict of this module, or sniklaus/pytorch-hed's
    ``network-bsds500.pytorch`` (keys ``netVggOne.0.weight`` / ``moduleVggOne.0.weight`` ...)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise missing_data_error("HED edge-detector weights", path, url=HED_URL,
                                 fix="set data.init_args.hed_weights to the downloaded file, or use "
                                     "data.init_args.sketch canny (no weights needed)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    renamed = {}
    for key, value in state.items():
        for prefix in ("module", "net"):
            name = key.split(".", 1)[0]
            if name.startswith(prefix) and name[len(prefix):] in _SNIKLAUS_NAMES:
                key = _SNIKLAUS_NAMES[name[len(prefix):]] + key[len(name):]
                break
        renamed[key] = value
    model = HED()
    try:
        model.load_state_dict(renamed)
    except RuntimeError as err:
        raise ValueError(f"'{path}' does not hold HED weights (sniklaus/pytorch-hed layout expected): {err}") from err
    return model.eval().requires_grad_(False)
