"""VQGAN's training losses and its patch discriminator, after taming-transformers (Esser et al., arXiv 2012.09841).

Read in CompVis/taming-transformers ``taming/modules/losses/vqperceptual.py`` (``VQLPIPSWithDiscriminator``):

    nll  = mean(|x - x_rec| + perceptual_weight * LPIPS(x, x_rec))
    L_G  = nll + d_weight * disc_factor(step) * (-mean D(x_rec)) + codebook_weight * codebook_loss
    L_D  = disc_factor(step) * 0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_rec)))        (hinge)
    d_weight = clamp(||grad_last nll|| / (||grad_last g_loss|| + 1e-4), 0, 1e4) * disc_weight

with ``grad_last`` the gradient at the decoder's last layer (eq. 7 of the paper), ``disc_factor(step)`` 0
before ``disc_start`` (``adopt_weight``) and 1 after. The codebook loss is the VQ-VAE one with beta = 0.25
(taming's ``VectorQuantizer``; diffusers' ``VectorQuantizer(legacy=True)`` computes the same). The
discriminator is taming's ``NLayerDiscriminator`` (``taming/modules/discriminator/model.py``, pix2pix's
PatchGAN): 4x4 convolutions, 3 layers, 64 channels, batch norm, leaky ReLU 0.2, init N(0, 0.02).

LPIPS (Zhang et al., arXiv 1801.03924) needs VGG-16 and its learned linear heads, neither downloadable here:
``feature_distance`` is LPIPS with unit channel weights on the frozen VGG-16 of ``lit_digest.core.vgg``
(pool1..pool3 there, relu1_2..relu3_3 in LPIPS), used when the user has torchvision's VGG-16 file.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["hinge_d_loss", "adopt_weight", "adaptive_weight", "feature_distance", "NLayerDiscriminator"]


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """``0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_rec)))`` over every patch logit (taming's ``hinge_d_loss``)."""
    return 0.5 * (F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean())


def adopt_weight(weight: float, step: int, threshold: int) -> float:
    """``weight`` from ``step >= threshold`` on, 0 before: the discriminator starts late (taming's ``adopt_weight``)."""
    return weight if step >= threshold else 0.0


def adaptive_weight(nll_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    disc_weight: float = 1.0) -> torch.Tensor:
    """``lambda = ||grad nll|| / (||grad g_loss|| + 1e-4)`` at ``last_layer``, clamped to [0, 1e4], detached, times
    ``disc_weight`` (Esser et al. eq. 7; taming's ``calculate_adaptive_weight``)."""
    (nll_grad,) = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)
    (g_grad,) = torch.autograd.grad(g_loss, last_layer, retain_graph=True)
    weight = torch.norm(nll_grad) / (torch.norm(g_grad) + 1e-4)
    return torch.clamp(weight, 0.0, 1e4).detach() * disc_weight


def feature_distance(features: Sequence[torch.Tensor], target: Sequence[torch.Tensor]) -> torch.Tensor:
    """LPIPS with unit weights: ``sum_l mean_hw ||f_l / |f_l| - t_l / |t_l|||^2`` (channel-normalised feature maps
    ``(B, C_l, H_l, W_l)``), per image ``(B,)``."""
    total = 0.0
    for f, t in zip(features, target, strict=True):
        f = f / (f.norm(dim=1, keepdim=True) + 1e-10)
        t = t / (t.norm(dim=1, keepdim=True) + 1e-10)
        total = total + (f - t).pow(2).sum(1).mean((1, 2))  # (B,)
    return total


class NLayerDiscriminator(nn.Module):
    """PatchGAN: ``(B, in_channels, H, W) -> (B, 1, h, w)`` logits, each judging one patch.

    Args:
        in_channels: image channels (3).
        channels: of the first layer, doubled per layer up to 8x (taming's ``ndf`` 64).
        layers: strided layers (taming's ``n_layers`` 3).
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        if layers < 1 or channels < 1:
            raise ValueError(f"NLayerDiscriminator needs layers >= 1 and channels >= 1, got {layers}, {channels}")
        seq: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < layers else 1  # the last widening layer keeps the size, as pix2pix's
            seq += [nn.Conv2d(channels * prev, channels * mult, 4, stride, 1, bias=False),
                    nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2)]
        seq.append(nn.Conv2d(channels * mult, 1, 4, 1, 1))
        self.main = nn.Sequential(*seq)
        for m in self.modules():  # taming's weights_init
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 1, h, w)
        return self.main(x)
