"""PSNR, the content loss and depth errors against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.nerf.losses import content_loss, depth_errors, psnr


def test_psnr_is_minus_ten_log10_of_the_mse_and_finite_for_a_perfect_match():
    target = torch.rand(2, 5, 3)
    assert psnr(target + 0.1, target).item() == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert psnr(target - 0.5, target).item() == pytest.approx(-10 * math.log10(0.25), abs=1e-4)
    assert psnr(target, target).item() == pytest.approx(100.0)  # MSE clamped at 1e-10


def test_content_loss_compares_the_deepest_maps_only():
    torch.manual_seed(0)
    out = [torch.randn(2, 3, 8, 8), torch.randn(2, 4, 4, 4), torch.randn(2, 5, 2, 2)]
    content = [torch.randn(2, 3, 8, 8), torch.randn(2, 4, 4, 4), out[2] + 0.5]
    assert content_loss(out, content).item() == pytest.approx(0.25)


def test_depth_errors_skip_the_pixels_without_a_surface():
    pred = torch.tensor([[1.0, 2.0], [5.0, 7.0]])
    true = torch.tensor([[2.0, float("inf")], [4.0, float("nan")]])
    errors = depth_errors(pred, true)
    # the finite pixels: |1 - 2| / 2 and |5 - 4| / 4
    assert errors["depth_mae"].item() == pytest.approx(1.0)
    assert errors["depth_absrel"].item() == pytest.approx((1 / 2 + 1 / 4) / 2)
    none = depth_errors(pred, torch.full((2, 2), float("inf")))
    assert set(none) == {"depth_mae", "depth_absrel"} and all(math.isnan(v.item()) for v in none.values())
    # the NaNs live on the prediction's device (CUDA in training; meta stands in for it here)
    assert depth_errors(pred.to("meta"), torch.full((2, 2), float("inf")))["depth_mae"].device.type == "meta"
