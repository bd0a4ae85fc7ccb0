"""The losses against naive references: gradient penalty, critic losses, per-pixel, Gram/style, TV."""

from __future__ import annotations

import pytest
import torch

from lit_digest.gan import SNPatchGAN
from lit_digest.gan.losses import (
    gradient_penalty,
    gram_matrix,
    hinge_d_loss,
    masked_l1,
    per_pixel_loss,
    perceptual_loss,
    real_score_penalty,
    scfegan_d_loss,
    style_loss,
    total_variation_loss,
)


def test_gradient_penalty_of_a_linear_critic_is_analytic():
    """D(x) = <w, x>: grad = w everywhere, so the penalty is (||w * M|| - 1)^2 per sample, whatever t."""
    torch.manual_seed(0)
    w = torch.randn(3, 8, 8)
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    mask = (torch.rand(4, 1, 8, 8) > 0.5).float()
    t = torch.rand(4)
    got = gradient_penalty(lambda u: (u * w).sum((1, 2, 3)), real, fake, t, mask=mask)
    expected = (((w * mask) ** 2).sum((1, 2, 3)).sqrt() - 1).pow(2).mean()
    torch.testing.assert_close(got, expected)
    unmasked = gradient_penalty(lambda u: (u * w).sum((1, 2, 3)), real, fake, t)
    torch.testing.assert_close(unmasked, (w.norm() - 1) ** 2)


def test_gradient_penalty_equals_a_per_sample_reference_and_trains_the_critic():
    torch.manual_seed(0)
    critic = SNPatchGAN(in_channels=3, widths=(8, 8), kernel_size=3).eval()
    real, fake = torch.randn(3, 3, 16, 16), torch.randn(3, 3, 16, 16)
    mask = (torch.rand(3, 1, 16, 16) > 0.3).float()
    t = torch.tensor([0.1, 0.5, 0.9])
    got = gradient_penalty(critic, real, fake, t, mask=mask)
    reference = []
    for i in range(3):  # one sample at a time, the patch scores summed, as tf.gradients does
        u = (t[i] * real[i: i + 1] + (1 - t[i]) * fake[i: i + 1]).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(u).sum(), u)
        reference.append(((grad * mask[i]).norm() - 1) ** 2)
    torch.testing.assert_close(got, torch.stack(reference).mean())
    got.backward()  # double backward: the penalty has gradients for the critic's weights (not the last bias)
    weights = [p for p in critic.parameters() if p.ndim > 1]
    assert weights and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_critic_and_generator_adversarial_losses():
    real, fake = torch.tensor([[2.0, -0.5]]), torch.tensor([[0.5, -3.0]])
    torch.testing.assert_close(scfegan_d_loss(real, fake), (1 - real).mean() + (1 + fake).mean())
    torch.testing.assert_close(hinge_d_loss(real, fake), torch.tensor((0 + 1.5) / 2 + (1.5 + 0) / 2))
    torch.testing.assert_close(real_score_penalty(real), torch.tensor((4 + 0.25) / 2))


def test_per_pixel_loss_weights_hole_and_known_parts():
    torch.manual_seed(0)
    out, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    mask = (torch.rand(2, 1, 4, 4) > 0.5).float()
    hole = (mask * (out - target)).abs().sum() / target.numel()
    known = ((1 - mask) * (out - target)).abs().sum() / target.numel()
    torch.testing.assert_close(per_pixel_loss(out, target, mask, 1.5, 1.0), 1.5 * hole + known)
    hole_only = (mask * (out - target)).abs().sum() / (mask.sum() * 3)
    torch.testing.assert_close(masked_l1(out, target, mask), hole_only)


def test_gram_style_perceptual_and_tv_equal_naive_loops():
    torch.manual_seed(0)
    f, g = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)
    gram = torch.zeros(2, 4, 4)
    for b in range(2):
        for i in range(4):
            for j in range(4):
                gram[b, i, j] = (f[b, i] * f[b, j]).sum() / (4 * 3 * 5)
    torch.testing.assert_close(gram_matrix(f), gram)
    style = (gram_matrix(f) - gram_matrix(g)).abs().sum() / (2 * 4 * 4)
    torch.testing.assert_close(style_loss([f, f], [g, g]), 2 * style)
    torch.testing.assert_close(perceptual_loss([f], [g]), (f - g).abs().mean())
    img = torch.randn(2, 3, 5, 6)
    tv = sum(abs(img[b, c, i, j + 1] - img[b, c, i, j]) for b in range(2) for c in range(3) for i in range(5)
             for j in range(5))
    tv += sum(abs(img[b, c, i + 1, j] - img[b, c, i, j]) for b in range(2) for c in range(3) for i in range(4)
              for j in range(6))
    torch.testing.assert_close(total_variation_loss(img), tv / img.numel())
    assert total_variation_loss(torch.ones(1, 3, 4, 4)) == 0


@pytest.mark.parametrize("fn", [perceptual_loss, style_loss])
def test_feature_losses_need_matching_layer_lists(fn):
    with pytest.raises(ValueError):
        fn([torch.zeros(1, 2, 2, 2)], [])
