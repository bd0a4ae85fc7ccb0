"""The GAN losses' defaults, signs, dtypes, masked regions and edge cases against plain references (make mutate on
gan/losses.py): the non-saturating loss with its default weights, SC-FEGAN's generator loss, the per-pixel loss
with its default weights, the masked L1 of a single hole pixel, the interpolates' dtype, and the total variation
restricted to a region."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.gan.losses import (
    generator_adversarial_loss,
    logistic_d_loss,
    masked_l1,
    nonsaturating_g_loss,
    per_pixel_loss,
    r1_penalty,
    random_interpolates,
    total_variation_loss,
)


def _softplus(v: float) -> float:
    return math.log(1 + math.exp(v))


def test_nonsaturating_default_weights_are_one_and_the_heads_are_averaged():
    fake = [torch.tensor([[0.5], [-1.0]]), torch.tensor([2.0, -3.0, 0.25])]
    per_head = [(_softplus(-0.5) + _softplus(1.0)) / 2, (_softplus(-2.0) + _softplus(3.0) + _softplus(-0.25)) / 3]
    assert nonsaturating_g_loss(fake).item() == pytest.approx(sum(per_head) / 2, rel=1e-6)
    assert nonsaturating_g_loss(fake, [2.0, 0.5]).item() == pytest.approx(
        (2.0 * per_head[0] + 0.5 * per_head[1]) / 2, rel=1e-6)
    with pytest.raises(ValueError):  # one weight per head
        nonsaturating_g_loss(fake, [1.0])


def test_logistic_d_loss_needs_one_fake_head_per_real_head():
    real, fake = [torch.tensor([1.0]), torch.tensor([-2.0])], [torch.tensor([0.5])]
    with pytest.raises(ValueError):
        logistic_d_loss(real, fake)
    one = logistic_d_loss(real[:1], fake).item()
    assert one == pytest.approx(_softplus(-1.0) + _softplus(0.5), rel=1e-6)


def test_r1_of_two_linear_heads_sums_their_squared_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 3, requires_grad=True)
    w, v = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 3.0, 1.0])
    # grad of mean_b <w, x_b> is w / B on every row: per-sample squared norm |w|^2 / B^2
    expected = (1 + 4 + 0.25) / 4 + (0 + 9 + 1) / 4
    assert r1_penalty([x @ w, x @ v], x).item() == pytest.approx(expected, rel=1e-6)


def test_generator_adversarial_loss_is_minus_the_mean_score():
    assert generator_adversarial_loss(torch.tensor([[1.0, 2.0], [3.0, -2.0]])).item() == pytest.approx(-1.0)


def test_per_pixel_loss_default_weights_are_one():
    torch.manual_seed(0)
    out, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    mask = (torch.rand(2, 1, 4, 4) > 0.5).float()
    torch.testing.assert_close(per_pixel_loss(out, target, mask), (out - target).abs().mean())


def test_masked_l1_of_a_single_hole_pixel_is_its_error():
    out, target = torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3)
    out[0, 0, 1, 2], target[0, 0, 0, 0] = 0.75, 5.0  # the second error lies outside the hole
    mask = torch.zeros(1, 1, 3, 3)
    mask[0, 0, 1, 2] = 1.0
    assert masked_l1(out, target, mask).item() == pytest.approx(0.75)
    assert masked_l1(out, target, torch.zeros_like(mask)).item() == 0.0  # an empty hole: no division by zero


def test_random_interpolates_keep_the_images_dtype():
    real, fake = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    u = random_interpolates(real, fake, torch.tensor([0.25, 1.0], dtype=torch.float64))
    assert u.dtype == torch.float32
    torch.testing.assert_close(u[:, 0, 0, 0], torch.tensor([0.25, 1.0]))


def test_total_variation_in_a_region_counts_only_pairs_inside_it():
    torch.manual_seed(0)
    img = torch.randn(2, 2, 4, 5)
    region = (torch.rand(2, 1, 4, 5) > 0.4).float()
    total = 0.0
    for b in range(2):
        for c in range(2):
            for i in range(4):
                for j in range(5):
                    inside = region[b, 0, i, j] == 1
                    if j + 1 < 5 and inside and region[b, 0, i, j + 1] == 1:
                        total += abs(img[b, c, i, j + 1] - img[b, c, i, j]).item()
                    if i + 1 < 4 and inside and region[b, 0, i + 1, j] == 1:
                        total += abs(img[b, c, i + 1, j] - img[b, c, i, j]).item()
    assert total > 0
    assert total_variation_loss(img, region).item() == pytest.approx(total / img.numel(), rel=1e-5)
