"""The view AET, AED and the paper's classifiers train on: a random crop of the zero-padded image and a flip."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lit_digest.ssl.views import MultiView, to_unit_float

__all__ = ["PadCropFlip", "PadCropViews"]


class PadCropFlip(nn.Module):
    """torchvision's ``RandomCrop(crop_size, padding)`` then ``RandomHorizontalFlip(flip_p)``, per sample on a
    batch: the image is padded with ``padding`` black pixels on each side and a ``crop_size`` square is cut at a
    random whole-pixel offset (no resampling). The official AET code applies it to every training image before
    the transformation, and its classifiers train with it (``cifar/affine/main.py``, ``classification.py``)."""

    def __init__(self, crop_size: int = 32, padding: int = 4, flip_p: float = 0.5) -> None:
        super().__init__()
        if crop_size < 1 or padding < 0:
            raise ValueError(f"PadCropFlip: need crop_size >= 1 and padding >= 0, got {crop_size}, {padding}")
        if not 0 <= flip_p <= 1:
            raise ValueError(f"PadCropFlip: flip_p must be a probability, got {flip_p}")
        self.crop_size, self.padding, self.flip_p = crop_size, padding, flip_p

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                sizes: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 or float images ``(B, C, H, W)`` -> float views ``(B, C, S, S)`` in [0, 1]. ``sizes`` (the
        original sizes of image-folder batches) is not used: the crop is cut from the batch as it is."""
        x = to_unit_float(x)
        b, _, h, w = x.shape
        p, s = self.padding, self.crop_size
        if h + 2 * p < s or w + 2 * p < s:
            raise ValueError(f"PadCropFlip: a {s} px crop does not fit {h}x{w} images padded by {p}: set "
                             f"data.init_args.views.init_args.crop_size to at most {min(h, w) + 2 * p}")
        padded = F.pad(x, (p, p, p, p))  # (B, C, H + 2p, W + 2p), black borders
        top = torch.randint(0, h + 2 * p - s + 1, (b,), device=x.device, generator=generator)
        left = torch.randint(0, w + 2 * p - s + 1, (b,), device=x.device, generator=generator)
        offsets = torch.arange(s, device=x.device)
        rows = (top.view(-1, 1) + offsets).view(b, s, 1)  # (B, S, 1)
        cols = (left.view(-1, 1) + offsets).view(b, 1, s)  # (B, 1, S)
        crops = padded[torch.arange(b, device=x.device).view(b, 1, 1), :, rows, cols]  # (B, S, S, C)
        crops = crops.permute(0, 3, 1, 2)  # (B, C, S, S)
        flip = torch.rand(b, device=x.device, generator=generator) < self.flip_p
        return torch.where(flip.view(-1, 1, 1, 1), crops.flip(-1), crops).contiguous()


class PadCropViews(MultiView):
    """One ``PadCropFlip`` view per image: the ``views`` of an image DataModule for AET, AED and the paper's
    frozen-feature classifiers (official defaults: 32 px crops of images padded by 4, flip 0.5)."""

    def __init__(self, crop_size: int = 32, padding: int = 4, flip_p: float = 0.5) -> None:
        super().__init__([PadCropFlip(crop_size, padding, flip_p)])  # type: ignore[list-item]
