"""``boost``'s patch stage against a plain loop written here: every patch's merged estimate, fitted to the base by
least squares, blended into the canvas with the Gaussian mask (1 inside: the patch; 0 at its rim: the canvas)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from lit_digest.depth.boost.pipeline import blend_mask, boost, double_estimate, merge_estimates, resize
from tests.depth.test_pipeline import SETTINGS, Gray, Pick, checkerboard


def naive_patch_stage(estimator, merge_net, image, result, settings):
    rf, size = settings.receptive_field, (settings.merge_size, settings.merge_size)
    th, tw = result["target"]
    base = double_estimate(estimator, merge_net, image, rf, result["resolution"], settings)
    base_big = resize(base, (th, tw))
    canvas = base_big.clone()[0, 0].double()
    big = resize(image, (th, tw)).clamp(0, 1)
    for x, y, w, h in result["patches"]:
        own = double_estimate(estimator, merge_net, big[..., y: y + h, x: x + w], rf, 2 * rf, settings)
        base_crop = resize(base_big[..., y: y + h, x: x + w], size)
        merged = merge_estimates(merge_net, base_crop, own)
        a, b = np.polyfit(merged.flatten().double().numpy(), base_crop.flatten().double().numpy(), 1)
        fitted = resize((a * merged.double() + b).float(), (h, w))[0, 0].double()
        mask = blend_mask(h, w)[0, 0].double()
        region = canvas[y: y + h, x: x + w]
        canvas[y: y + h, x: x + w] = (1 - mask) * region + mask * fitted  # the patch where the mask is 1
    return resize(canvas[None, None].float(), tuple(image.shape[-2:]))


def test_boost_blends_each_patch_in_with_the_mask_as_a_plain_loop_does():
    image = torch.full((1, 3, 64, 64), 0.3)
    image[..., 20:50, 10:60] = checkerboard(50, 2)[..., :30, :]
    result = boost(Gray(), Pick(1), image, SETTINGS)  # the merge keeps the patch's own estimate
    assert len(result["patches"]) > 3
    expected = naive_patch_stage(Gray(), Pick(1), image, result, SETTINGS)
    torch.testing.assert_close(result["depth"], expected, rtol=1e-4, atol=1e-4)
    assert (result["depth"] - result["base"]).abs().max() > 0.1  # the patches changed the base


def test_the_patch_stage_never_exceeds_max_resolution():
    image = torch.full((1, 3, 64, 64), 0.3)
    image[..., 20:50, 10:60] = checkerboard(50, 2)[..., :30, :]
    free = boost(Gray(), Pick(1), image, SETTINGS)
    capped = boost(Gray(), Pick(1), image, dataclasses.replace(SETTINGS, max_resolution=max(free["target"]) - 16))
    assert max(capped["target"]) == max(free["target"]) - 16
    below = boost(Gray(), Pick(1), image, dataclasses.replace(SETTINGS, max_resolution=free["resolution"] - 1))
    assert below["patches"] == [] and torch.equal(below["depth"], below["base"])  # no patch stage below R_x
