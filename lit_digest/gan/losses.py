"""GAN and image-completion losses as pure functions (shapes in the comments).

Adversarial: the logistic (non-saturating) losses of Goodfellow et al. (arXiv 1406.2661, section 3) over a
discriminator's list of heads and the R1 penalty (Mescheder et al., arXiv 1801.04406, eq. 9) as StyleGAN2 and
GANs N' Roses use them (mchong6/GANsNRoses ``util.py``); the hinge loss of SN-PatchGAN (Yu et al., arXiv
1806.03589, eq. 2-3), SC-FEGAN's version without the ReLU (Jo & Park, arXiv 1902.06838, section 3.3), the
gradient penalty (Gulrajani et al., arXiv 1704.00028) restricted to a mask as in DeepFill v1 (Yu et al., arXiv
1801.07892, section 4.1), and the squared score of real samples (SC-FEGAN's extra term; Karras et al.
1710.10196's drift term).

Completion: per-pixel L1 weighted inside and outside the hole, perceptual and style (Gram) losses on
feature maps, total variation (Liu et al., "Image Inpainting for Irregular Holes Using Partial
Convolutions", arXiv 1804.07723, section 3.3, whose normalisations SC-FEGAN's eq. 1-5 repeat).

Convention: ``mask`` is 1 inside the hole (the region to fill), 0 where the image is known.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

__all__ = [
    "logistic_d_loss", "nonsaturating_g_loss", "r1_penalty", "hinge_d_loss", "scfegan_d_loss",
    "generator_adversarial_loss", "real_score_penalty", "random_interpolates",
    "gradient_penalty", "per_pixel_loss", "masked_l1", "gram_matrix", "perceptual_loss", "style_loss",
    "total_variation_loss",
]


# -- adversarial ----------------------------------------------------------------------------------------
def logistic_d_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_heads E[softplus(-D(x))] + E[softplus(D(G(z)))]``: the discriminator's logistic loss, summed over its
    heads (each any shape, batch first; GANs N' Roses' ``d_logistic_loss``)."""
    return sum(F.softplus(-r).mean() + F.softplus(f).mean() for r, f in zip(real, fake, strict=True))


def nonsaturating_g_loss(fake: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """``sum_heads w_h E[softplus(-D(G(z)))_h] / n_heads``: the generator's non-saturating loss, a weighted mean
    over the heads (GANs N' Roses' ``g_nonsaturating_loss``; weights 1 by default)."""
    weights = [1.0] * len(fake) if weights is None else weights
    return sum(w * F.softplus(-f).mean() for f, w in zip(fake, weights, strict=True)) / len(fake)


def r1_penalty(real: Sequence[torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    """``sum_heads E_b ||grad_x mean(D_h(x))||^2``: R1, the squared gradient of the real scores at the real
    inputs ``(B, ...)`` (which must require grad and have produced ``real``); differentiable again (it trains
    the discriminator). As GANs N' Roses' ``d_r1_loss``, each head is differentiated through its *mean* score,
    so a head of ``n`` scores per sample weighs ``1 / (B n)^2`` of StyleGAN2's ``sum`` version; the caller
    multiplies by ``gamma / 2`` (and the lazy interval)."""
    total = inputs.new_zeros(())
    for scores in real:
        (grad,) = torch.autograd.grad(scores.mean(), inputs, create_graph=True)  # (B, ...)
        total = total + grad.pow(2).flatten(1).sum(1).mean()
    return total


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """SN-PatchGAN's discriminator loss ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]`` over every patch score."""
    return torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()


def scfegan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """SC-FEGAN's ``E[1 - D(I_gt)] + E[1 + D(I_comp)]``: SN-PatchGAN's loss without the ReLU ("we did not
    apply ReLU function on GAN loss", section 3.3), a Wasserstein critic loss up to the constant 2."""
    return (1 - real).mean() + (1 + fake).mean()


def generator_adversarial_loss(fake: torch.Tensor) -> torch.Tensor:
    """``L_G_SN = -E[D(I_comp)]`` (SN-PatchGAN eq. 3, SC-FEGAN section 3.3)."""
    return -fake.mean()


def real_score_penalty(real: torch.Tensor) -> torch.Tensor:
    """``E[D(I_gt)^2]``: keeps the critic's scores of real images near zero (SC-FEGAN's extra ground-truth
    term with weight epsilon = 0.001; the drift term of Karras et al., arXiv 1710.10196, appendix A.1)."""
    return real.pow(2).mean()


def random_interpolates(real: torch.Tensor, fake: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``U = t * real + (1 - t) * fake`` with one ``t`` in [0, 1] per sample: ``(B, ...), (B,) -> (B, ...)``."""
    t = t.view(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    return t * real + (1 - t) * fake


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     t: torch.Tensor, mask: torch.Tensor | None = None, norm: float = 1.0) -> torch.Tensor:
    """``E_U[(||grad_U sum D(U) * M||_2 - norm)^2]`` with ``U`` between ``real`` and ``fake`` (WGAN-GP).

    ``critic`` maps images ``(B, C, H, W)`` to scores of any shape whose batch dimension comes first (a
    conditional critic closes over its conditions); patch scores are summed per sample, as
    ``tf.gradients`` does in the official ``gradients_penalty`` (JiahuiYu/neuralgym ``gan_ops.py``,
    used by DeepFill v1 with the hole mask and lambda = 10). ``mask`` ``(B, 1, H, W)`` restricts the
    gradient to the hole (SC-FEGAN section 3.3: ``||grad_U D(U) * M||``). Differentiable twice: the
    penalty trains the critic.
    """
    u = random_interpolates(real.detach(), fake.detach(), t).requires_grad_(True)  # (B, C, H, W)
    scores = critic(u)
    (grad,) = torch.autograd.grad(scores.sum(), u, create_graph=True)  # (B, C, H, W)
    if mask is not None:
        grad = grad * mask
    slopes = grad.flatten(1).pow(2).sum(1).add(1e-12).sqrt()  # (B,); the epsilon keeps sqrt differentiable at 0
    return (slopes - norm).pow(2).mean()


# -- completion -----------------------------------------------------------------------------------------
def per_pixel_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, hole_weight: float = 1.0,
                   known_weight: float = 1.0) -> torch.Tensor:
    """``hole_weight * ||M * (I_gen - I_gt)||_1 / N + known_weight * ||(1 - M) * (I_gen - I_gt)||_1 / N``
    with ``N`` the number of elements of ``I_gt`` (SC-FEGAN eq. 1; PConv's L_hole and L_valid).
    ``output, target: (B, C, H, W)``, ``mask: (B, 1, H, W)``."""
    diff = (output - target).abs()
    return (hole_weight * mask * diff + known_weight * (1 - mask) * diff).mean()


def masked_l1(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the hole's pixels and channels only (the evaluation metric), per batch."""
    diff = (output - target).abs() * mask  # (B, C, H, W)
    return diff.sum() / (mask.sum() * output.shape[1]).clamp_min(1)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``F F^T / (C H W)``: ``(B, C, H, W) -> (B, C, C)`` (PConv's style normalisation ``K_p = 1 / (C H W)``)."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def perceptual_loss(features: Sequence[torch.Tensor], target_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_q ||Theta_q(I) - Theta_q(I_gt)||_1 / N_Theta_q`` over the feature maps (SC-FEGAN eq. 2 for one image;
    it sums the term for ``I_gen`` and for ``I_comp``)."""
    return sum((f - t).abs().mean() for f, t in zip(features, target_features, strict=True))


def style_loss(features: Sequence[torch.Tensor], target_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_q ||G_q(I) - G_q(I_gt)||_1 / C_q^2`` with the Gram matrices ``G_q`` of the feature maps
    (SC-FEGAN eq. 3-4, PConv eq. 4-5); averaged over the batch."""
    return sum((gram_matrix(f) - gram_matrix(t)).abs().mean()
               for f, t in zip(features, target_features, strict=True))


def total_variation_loss(image: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """``sum ||I(i, j+1) - I(i, j)||_1 / N + sum ||I(i+1, j) - I(i, j)||_1 / N`` (SC-FEGAN eq. 5, on ``I_comp``;
    ``N`` its number of elements). ``region`` ``(B, 1, H, W)`` counts only the pairs whose two pixels lie in it
    (PConv's 1-pixel dilation of the hole); None: every pair."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs()  # (B, C, H, W - 1)
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs()  # (B, C, H - 1, W)
    if region is not None:
        dx = dx * region[..., :, 1:] * region[..., :, :-1]
        dy = dy * region[..., 1:, :] * region[..., :-1, :]
    return (dx.sum() + dy.sum()) / image.numel()
