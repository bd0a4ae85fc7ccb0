"""View pipelines for self-supervised learning, batched and per-sample random.

Every op takes a float batch ``(B, C, H, W)`` in ``[0, 1]`` and draws its own random
parameters for every sample, so the same code runs

* on the accelerator, on a whole uint8 batch after transfer (the fast path: the
  DataModule calls it from ``on_after_batch_transfer``), and
* in DataLoader workers, on one image at a time (the CPU path).

A pipeline is split in ``sample_params`` (all randomness, as tensors) and ``apply``
(deterministic), which makes it testable: the same parameters give the same views.

The ops and their order follow BYOL (arXiv 2006.07733, appendix B, table 6):
random resized crop -> horizontal flip -> colour jitter (random order) -> grayscale ->
Gaussian blur -> solarization. Crops are resampled bilinearly with ``grid_sample``
(no antialiasing, unlike torchvision's PIL path).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ViewAugment", "MultiView", "BYOLViews", "SimCLRViews", "SupervisedViews", "to_unit_float"]

_LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's tensor ops


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` -> float ``[0, 1]``; float input is returned as float32."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)  # (B, 1, H, W)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = x.unbind(1)  # each (B, H, W)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-8), torch.zeros_like(maxc))
    d = delta.clamp_min(1e-8)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return h, s, maxc


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sector = i.unsqueeze(1)  # (B, 1, H, W)
    r = torch.stack([v, q, p, p, t, v], dim=1).gather(1, sector)
    g = torch.stack([t, v, v, q, p, p], dim=1).gather(1, sector)
    b = torch.stack([p, p, t, v, v, q], dim=1).gather(1, sector)
    return torch.cat([r, g, b], dim=1)  # (B, 3, H, W)


def _adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    h, s, v = _rgb_to_hsv(x)
    h = (h + shift.view(-1, 1, 1)) % 1.0
    return _hsv_to_rgb(h, s, v)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur with a different ``sigma`` (B,) for every sample."""
    b, c, h, w = x.shape
    half = kernel_size // 2
    t = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)  # (K,)
    kernel = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))  # (B, K)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.pad(y, (0, 0, half, half), mode="reflect")
    y = F.conv2d(y, kernel.view(b * c, 1, kernel_size, 1), groups=b * c)
    y = F.pad(y, (half, half, 0, 0), mode="reflect")
    y = F.conv2d(y, kernel.view(b * c, 1, 1, kernel_size), groups=b * c)
    return y.view(b, c, h, w)


class ViewAugment(nn.Module):
    """One random view of every image in a batch, with per-sample parameters.

    Defaults are solo-learn's CIFAR BYOL/SimCLR view (``scripts/pretrain/cifar/augmentations``):
    crop scale [0.08, 1], flip 0.5, colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8,
    grayscale 0.2, no blur, no solarization. BYOL's ImageNet views (2006.07733, table 6)
    set ``blur_p`` 1.0 / 0.1 and ``solarize_p`` 0.0 / 0.2 on views 1 / 2.

    Args:
        crop_size: output side length.
        min_scale, max_scale: crop area as a fraction of the image ([0.08, 1] in the papers).
        min_ratio, max_ratio: crop aspect ratio range (3/4, 4/3).
        flip_p: probability of a horizontal flip.
        jitter_p: probability of colour jitter; ``brightness``, ``contrast``, ``saturation``
            are max deviations of the factor from 1, ``hue`` the max shift (of 0.5).
        grayscale_p: probability of converting to grey (kept at C channels).
        blur_p: probability of Gaussian blur with sigma ~ U[blur_sigma_min, blur_sigma_max]
            and a kernel of about 10% of ``crop_size`` (23 px at 224, as BYOL).
        solarize_p: probability of solarization (x -> 1 - x where x >= 0.5).
    """

    def __init__(
        self,
        crop_size: int = 32,
        min_scale: float = 0.08,
        max_scale: float = 1.0,
        min_ratio: float = 3 / 4,
        max_ratio: float = 4 / 3,
        flip_p: float = 0.5,
        jitter_p: float = 0.8,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.2,
        hue: float = 0.1,
        grayscale_p: float = 0.2,
        blur_p: float = 0.0,
        blur_sigma_min: float = 0.1,
        blur_sigma_max: float = 2.0,
        solarize_p: float = 0.0,
    ) -> None:
        super().__init__()
        for name, p in [("flip_p", flip_p), ("jitter_p", jitter_p), ("grayscale_p", grayscale_p),
                        ("blur_p", blur_p), ("solarize_p", solarize_p)]:
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"ViewAugment: {name} must be a probability in [0, 1], got {p}")
        if not 0 < min_scale <= max_scale <= 1:
            raise ValueError(f"ViewAugment: need 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}")
        if not 0 <= hue <= 0.5:
            raise ValueError(f"ViewAugment: hue must be in [0, 0.5], got {hue}")
        self.crop_size = crop_size
        self.min_scale, self.max_scale = min_scale, max_scale
        self.min_ratio, self.max_ratio = min_ratio, max_ratio
        self.flip_p = flip_p
        self.jitter_p = jitter_p
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.grayscale_p = grayscale_p
        self.blur_p, self.blur_sigma_min, self.blur_sigma_max = blur_p, blur_sigma_min, blur_sigma_max
        self.blur_kernel = max(3, int(0.1 * crop_size) // 2 * 2 + 1)  # odd
        self.solarize_p = solarize_p

    # -- randomness -------------------------------------------------------------------
    def sample_params(self, n: int, height: int, width: int, device: torch.device | str = "cpu",
                      generator: torch.Generator | None = None,
                      sizes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Draw every random parameter for ``n`` samples of an ``height x width`` batch.

        ``sizes`` (n, 2): each image's original (height, width) when the batch holds them resized to a
        common square (``ImageFolderDataModule``): crops are then drawn in the original image's pixels
        (area and aspect ratio as torchvision's ``RandomResizedCrop`` on the original) and mapped to the
        batch's coordinates, so no border is lost and no aspect ratio is distorted.
        """

        def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(*shape, device=device, generator=generator)

        def coin(p: float) -> torch.Tensor:
            return torch.rand(n, device=device, generator=generator) < p

        if sizes is None:
            img_h, img_w = torch.full((n,), float(height), device=device), torch.full((n,), float(width), device=device)
        else:
            img_h, img_w = sizes.to(device=device, dtype=torch.float).unbind(1)  # each (n,)
        # Random resized crop, torchvision's rejection sampling with 10 tries, vectorised.
        tries = 10
        area = (img_h * img_w)[:, None] * uniform(self.min_scale, self.max_scale, n, tries)
        log_ratio = uniform(math.log(self.min_ratio), math.log(self.max_ratio), n, tries)
        ratio = torch.exp(log_ratio)
        crop_w = torch.sqrt(area * ratio).round()
        crop_h = torch.sqrt(area / ratio).round()
        ok = (crop_w > 0) & (crop_w <= img_w[:, None]) & (crop_h > 0) & (crop_h <= img_h[:, None])  # (n, tries)
        first = ok.float().argmax(dim=1, keepdim=True)
        any_ok = ok.any(dim=1)
        # Fall back to the whole image when no try fits (torchvision falls back to a centre crop).
        crop_w = torch.where(any_ok, crop_w.gather(1, first).squeeze(1), img_w)
        crop_h = torch.where(any_ok, crop_h.gather(1, first).squeeze(1), img_h)
        top = torch.floor(torch.rand(n, device=device, generator=generator) * (img_h - crop_h + 1))
        left = torch.floor(torch.rand(n, device=device, generator=generator) * (img_w - crop_w + 1))
        if sizes is not None:  # original pixels -> the batch's pixels
            sy, sx = height / img_h, width / img_w
            top, crop_h, left, crop_w = top * sy, crop_h * sy, left * sx, crop_w * sx

        jitter = coin(self.jitter_p)
        identity = torch.ones(n, device=device)
        return {
            "crop": torch.stack([top, left, crop_h, crop_w], dim=1),  # (n, 4) in pixels
            "flip": coin(self.flip_p),
            "brightness": torch.where(jitter, uniform(1 - self.brightness, 1 + self.brightness, n), identity),
            "contrast": torch.where(jitter, uniform(1 - self.contrast, 1 + self.contrast, n), identity),
            "saturation": torch.where(jitter, uniform(1 - self.saturation, 1 + self.saturation, n), identity),
            "hue": torch.where(jitter, uniform(-self.hue, self.hue, n), identity - 1),
            # torchvision's ColorJitter applies its four ops in a random order per call.
            "jitter_order": torch.rand(n, 4, device=device, generator=generator).argsort(dim=1),
            "grayscale": coin(self.grayscale_p),
            "blur": coin(self.blur_p),
            "blur_sigma": uniform(self.blur_sigma_min, self.blur_sigma_max, n),
            "solarize": coin(self.solarize_p),
        }

    # -- deterministic application -------------------------------------------------------
    def crop_and_flip(self, x: torch.Tensor, crop: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        top, left, crop_h, crop_w = crop.to(x.dtype).unbind(1)
        sign = 1.0 - 2.0 * flip.to(x.dtype)
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = sign * crop_w / w
        theta[:, 0, 2] = (2 * left + crop_w) / w - 1
        theta[:, 1, 1] = crop_h / h
        theta[:, 1, 2] = (2 * top + crop_h) / h - 1
        grid = F.affine_grid(theta, [b, 1, self.crop_size, self.crop_size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def color_jitter(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Brightness, contrast, saturation and hue in each sample's own order (``jitter_order``), as
        torchvision's ``ColorJitter`` on each image. Only the samples with a factor off its identity are touched,
        and each op runs once per sample: at each position the samples are grouped by the op they take there."""
        factors = {k: params[k] for k in ("brightness", "contrast", "saturation", "hue")}
        active = ((factors["brightness"] != 1) | (factors["contrast"] != 1) | (factors["saturation"] != 1)
                  | (factors["hue"] != 0)).nonzero().squeeze(1)
        if active.numel() == 0:
            return x
        y, order = x[active], params["jitter_order"][active]  # (A, C, H, W), (A, 4)
        factors = {k: v[active] for k, v in factors.items()}
        for position in range(4):
            op = order[:, position]
            groups = op.argsort(stable=True).split(torch.bincount(op, minlength=4).tolist())
            out = torch.empty_like(y)
            for index, rows in enumerate(groups):
                if rows.numel():
                    out[rows] = self._colour_op(index, y[rows], {k: v[rows] for k, v in factors.items()})
            y = out
        return x.index_copy(0, active, y)

    @staticmethod
    def _colour_op(op: int, x: torch.Tensor, factors: dict[str, torch.Tensor]) -> torch.Tensor:
        if op == 0:  # a blend with black
            return (x * factors["brightness"].view(-1, 1, 1, 1)).clamp_(0, 1)
        if op == 1:
            mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
            return _blend(x, mean.expand_as(x), factors["contrast"])
        if x.shape[1] != 3:  # saturation and hue leave grey images as they are
            return x
        if op == 2:
            return _blend(x, _grayscale(x).expand_as(x), factors["saturation"])
        return _adjust_hue(x, factors["hue"])

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """The view of float images ``x`` (B, C, H, W) in [0, 1] under ``params``."""
        x = self.crop_and_flip(x, params["crop"], params["flip"])  # (B, C, S, S)
        if self.jitter_p > 0:
            x = self.color_jitter(x, params)
        if self.grayscale_p > 0:
            x = torch.where(params["grayscale"].view(-1, 1, 1, 1), _grayscale(x).expand_as(x), x)
        if self.blur_p > 0:
            blurred = params["blur"].nonzero().squeeze(1)  # blur only these samples: the costly op
            if blurred.numel():
                x = x.index_copy(0, blurred, _gaussian_blur(x[blurred], params["blur_sigma"][blurred],
                                                            self.blur_kernel))
        if self.solarize_p > 0:
            x = torch.where(params["solarize"].view(-1, 1, 1, 1) & (x >= 0.5), 1.0 - x, x)
        return x

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                sizes: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: uint8 or float images ``(B, C, H, W)``; returns float views in [0, 1]. ``generator``: the
        random stream (the DataModule passes one seeded per rank); ``sizes``: see ``sample_params``."""
        x = to_unit_float(x)
        params = self.sample_params(x.shape[0], x.shape[2], x.shape[3], device=x.device, generator=generator,
                                    sizes=sizes)
        return self.apply(x, params)


class MultiView(nn.Module):
    """A list of view pipelines; ``forward`` returns one view per pipeline.

    SupCon (2004.11362) and multi-crop methods use more than two views: pass as many
    ``ViewAugment`` as needed.
    """

    def __init__(self, views: list[ViewAugment]) -> None:
        super().__init__()
        if not views:
            raise ValueError("MultiView needs at least one ViewAugment")
        self.views = nn.ModuleList(views)

    @property
    def num_views(self) -> int:
        return len(self.views)

    @property
    def crop_size(self) -> int:
        return self.views[0].crop_size

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                sizes: torch.Tensor | None = None) -> list[torch.Tensor]:
        x = to_unit_float(x)
        return [view(x, generator, sizes) for view in self.views]


class BYOLViews(MultiView):
    """BYOL's two asymmetric views (arXiv 2006.07733, appendix B, table 6).

    Defaults are solo-learn's CIFAR setting (``augmentations/asymmetric.yaml``): no blur on
    32x32 images, solarization 0.0 / 0.2. For ImageNet-like data use the paper's
    ``blur_p=[1.0, 0.1]`` with a 224 (or 96 for STL-10) crop.
    """

    def __init__(
        self,
        crop_size: int = 32,
        min_scale: float = 0.08,
        flip_p: float = 0.5,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.2,
        hue: float = 0.1,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: tuple[float, float] = (0.0, 0.0),
        solarize_p: tuple[float, float] = (0.0, 0.2),
    ) -> None:
        common = dict(crop_size=crop_size, min_scale=min_scale, flip_p=flip_p, brightness=brightness,
                      contrast=contrast, saturation=saturation, hue=hue, jitter_p=jitter_p,
                      grayscale_p=grayscale_p)
        super().__init__([ViewAugment(**common, blur_p=blur_p[i], solarize_p=solarize_p[i]) for i in range(2)])


class SimCLRViews(MultiView):
    """``n_views`` identically distributed views (SimCLR arXiv 2002.05709, appendix A).

    Defaults: solo-learn's symmetric CIFAR view of its SimCLR and SupCon runs
    (``scripts/pretrain/cifar/augmentations/symmetric.yaml``): colour jitter of strength
    s = 1 (0.8, 0.8, 0.8, 0.2) with p 0.8, grayscale 0.2, Gaussian blur p 0.5, the paper's
    ImageNet setting (appendix A). SupCon (2004.11362) uses the same views, any ``n_views``.
    """

    def __init__(
        self,
        crop_size: int = 32,
        n_views: int = 2,
        min_scale: float = 0.08,
        flip_p: float = 0.5,
        brightness: float = 0.8,
        contrast: float = 0.8,
        saturation: float = 0.8,
        hue: float = 0.2,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.5,
        solarize_p: float = 0.0,
    ) -> None:
        if n_views < 1:
            raise ValueError(f"SimCLRViews needs n_views >= 1, got {n_views}")
        view = dict(crop_size=crop_size, min_scale=min_scale, flip_p=flip_p, brightness=brightness, contrast=contrast,
                    saturation=saturation, hue=hue, jitter_p=jitter_p, grayscale_p=grayscale_p,
                    blur_p=blur_p, solarize_p=solarize_p)
        super().__init__([ViewAugment(**view) for _ in range(n_views)])


class SupervisedViews(MultiView):
    """One view with random resized crop + horizontal flip only: the augmentation of the
    standard linear-evaluation protocol and of plain supervised training."""

    def __init__(self, crop_size: int = 32, min_scale: float = 0.08, flip_p: float = 0.5) -> None:
        super().__init__([ViewAugment(crop_size=crop_size, min_scale=min_scale, flip_p=flip_p, jitter_p=0.0,
                                      grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)])
