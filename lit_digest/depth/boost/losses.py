"""pix2pix's conditional GAN + L1 objective (Isola et al., arXiv 1611.07004, eq. 4) as the merge network uses it:
vanilla (cross-entropy) GAN loss, ``lambda_L1 = 1000`` (``pix2pix4depth_model.py``; pix2pix itself uses 100)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gan_loss", "discriminator_loss", "generator_loss"]


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Binary cross-entropy of PatchGAN logits (B, 1, h, w) against all-real or all-fake labels."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``(L(D(x, y), real) + L(D(x, G(x)), fake)) / 2`` (pix2pix halves the discriminator's objective)."""
    return 0.5 * (gan_loss(real_logits, True) + gan_loss(fake_logits, False))


def generator_loss(fake_logits: torch.Tensor, fake: torch.Tensor, target: torch.Tensor,
                   lambda_l1: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L(D(x, G(x)), real), lambda_L1 * |G(x) - y|_1)`` with the L1 a mean over pixels; ``fake``, ``target``
    (B, 1, H, W) in [-1, 1]."""
    return gan_loss(fake_logits, True), lambda_l1 * F.l1_loss(fake, target)
