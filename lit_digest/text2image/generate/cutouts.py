"""What VQGAN+CLIP does to an image before CLIP sees it, and to a latent before the decoder does.

- ``straight_through_quantize``: each latent vector replaced by its nearest codebook entry in the forward pass,
  the gradient passed to the latent unchanged (the notebooks' ``vector_quantize`` with ``replace_grad``).
- ``ClampWithGrad``: clamp to [0, 1] in the forward pass; the gradient is zeroed only where it would push further
  out (the notebooks' ``clamp_with_grad``).
- ``MakeCutouts``: ``cutn`` square crops of random side ``min + (max - min) * u^cut_pow`` (``u`` uniform; Crowson's
  notebook; ``cut_pow`` > 1 favours small crops), resized to CLIP's input, then the augmentations of
  nerdyrodent/VQGAN-CLIP ``generate.py`` (kornia ``RandomAffine(15 degrees, translate 0.1, border)``,
  ``RandomPerspective(0.7)``, ``ColorJitter(hue 0.1, saturation 0.1)``, ``RandomErasing((0.1, 0.4), (0.3, 1/0.3))``,
  each with p = 0.7) and Gaussian noise of a random scale up to 0.1 per cutout (``noise_fac``).

Every image of a batch draws its crops and augmentations from its own seeded generator, so an image depends on its
prompt and seed, not on which other prompts share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Augment", "MakeCutouts", "straight_through_quantize", "ClampWithGrad"]


@dataclass(frozen=True)
class Augment:
    """The cutouts' augmentations (nerdyrodent/VQGAN-CLIP ``generate.py``'s ``MakeCutouts.augs`` and
    ``noise_fac``); ``p`` is the probability of each."""

    degrees: float = 15.0
    translate: float = 0.1
    perspective: float = 0.7
    hue: float = 0.1
    saturation: float = 0.1
    erase_scale: tuple[float, float] = (0.1, 0.4)
    erase_ratio: tuple[float, float] = (0.3, 1 / 0.3)
    p: float = 0.7
    noise_fac: float = 0.1

    def build(self) -> nn.Module:
        import kornia.augmentation as K

        return nn.Sequential(
            K.RandomAffine(degrees=self.degrees, translate=(self.translate, self.translate), p=self.p,
                           padding_mode="border"),
            K.RandomPerspective(self.perspective, p=self.p),
            K.ColorJitter(hue=self.hue, saturation=self.saturation, p=self.p),
            K.RandomErasing(self.erase_scale, self.erase_ratio, same_on_batch=True, p=self.p),
        )


torch.serialization.add_safe_globals([Augment])


def straight_through_quantize(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``(B, D, h, w)`` latents -> their nearest entries of ``codebook (K, D)``, with the identity's gradient."""
    x = z.movedim(1, -1)  # (B, h, w, D)
    d = x.pow(2).sum(-1, keepdim=True) + codebook.pow(2).sum(1) - 2 * x @ codebook.T  # (B, h, w, K)
    x_q = codebook[d.argmin(-1)]  # (B, h, w, D)
    return (x + (x_q - x).detach()).movedim(-1, 1)


class ClampWithGrad(torch.autograd.Function):
    """``x.clamp(lo, hi)``; backward keeps the gradient where a descent step moves ``x`` back towards the range."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(x)
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad * (grad * (x - x.clamp(ctx.lo, ctx.hi)) >= 0), None, None


class MakeCutouts(nn.Module):
    """``(B, 3, H, W)`` images in [0, 1] -> ``(B * cutn, 3, cut_size, cut_size)`` cutouts (image-major).

    Args:
        cut_size: CLIP's input side.
        cutn: cutouts per image (the notebooks: 32-64).
        cut_pow: the crop-size exponent (1: uniform sizes; 0: every cutout is the whole image).
        augment: the augmentations; None: none and no noise (plain crops).
    """

    def __init__(self, cut_size: int, cutn: int, cut_pow: float = 1.0, augment: Augment | None = Augment()) -> None:
        super().__init__()
        if cutn < 1 or cut_size < 1 or cut_pow < 0:
            raise ValueError(f"MakeCutouts needs cutn >= 1, cut_size >= 1 and cut_pow >= 0, got {cutn}, {cut_size}, "
                             f"{cut_pow}")
        self.cut_size, self.cutn, self.cut_pow, self.augment = cut_size, cutn, cut_pow, augment
        self.augs = augment.build() if augment is not None else None

    def forward(self, images: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        h, w = images.shape[-2:]
        max_size, min_size = min(h, w), min(h, w, self.cut_size)
        out = []
        for image, g in zip(images, generators, strict=True):
            sizes = (torch.rand(self.cutn, generator=g) ** self.cut_pow * (max_size - min_size) + min_size).long()
            corners = torch.rand(self.cutn, 2, generator=g)
            cuts = []
            for size, (fy, fx) in zip(sizes.tolist(), corners.tolist()):
                y, x = int(fy * (h - size + 1)), int(fx * (w - size + 1))
                crop = image[None, :, y:y + size, x:x + size]
                cuts.append(F.interpolate(crop, size=(self.cut_size, self.cut_size), mode="bilinear",
                                          align_corners=False, antialias=size > self.cut_size))
            batch = torch.cat(cuts)  # (cutn, 3, s, s)
            if self.augs is not None:
                seed = int(torch.randint(2**62, (1,), generator=g))
                devices = [batch.device] if batch.device.type == "cuda" else []
                with torch.random.fork_rng(devices=devices):  # kornia draws from the global generator
                    torch.manual_seed(seed)
                    batch = self.augs(batch)
                    if self.augment.noise_fac:
                        facs = batch.new_empty(self.cutn, 1, 1, 1).uniform_(0, self.augment.noise_fac)
                        batch = batch + facs * torch.randn_like(batch)
            out.append(batch)
        return torch.cat(out)
