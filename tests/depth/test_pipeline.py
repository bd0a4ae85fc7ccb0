"""The boosting pipeline on constructed images and oracle networks: the resolution search follows the edge density,
patches follow the detail, a merge network that keeps the base leaves the base unchanged."""

from __future__ import annotations

import torch
from torch import nn

from lit_digest.depth.boost.pipeline import (
    BoostSettings,
    blend_mask,
    boost,
    double_estimate,
    edge_map,
    estimate,
    resolution_search,
    select_patches,
)


class Gray(nn.Module):
    """A fully convolutional 'estimator': the grey level, at whatever size it is fed."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape[-2:]))
        return x.mean(1, keepdim=True)


class Pick(nn.Module):
    """A 'merge network' returning one of its two inputs (in [-1, 1], as the generator's tanh)."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.channel = channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.channel: self.channel + 1]


def checkerboard(size: int, period: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (((y // period) + (x // period)) % 2).float().expand(1, 3, size, size).clone()


def one_edge(size: int) -> torch.Tensor:
    image = torch.zeros(1, 3, size, size)
    image[..., size // 2:] = 1.0
    return image


SETTINGS = BoostSettings(receptive_field=16, merge_size=32, max_size=128, multiple_of=4)  # R_max = 8 RF (3000 / 384)
SEARCH = BoostSettings(receptive_field=16, merge_size=32, max_size=3000, multiple_of=4)


def test_resolution_search_follows_the_edge_density():
    dense, _ = resolution_search(checkerboard(96, 4), SEARCH)
    sparse, _ = resolution_search(one_edge(96), SEARCH)
    assert dense == 280  # every cell has an edge: the largest step below 3 x 96 px (16 + 33 x 8)
    assert sparse == 16  # one edge: most pixels are far from context at once
    torch.manual_seed(0)
    for _ in range(5):
        image = torch.rand(1, 3, 64, 64).round()
        image[..., :, torch.randint(0, 64, (1,)).item():] = 0.5  # a random share of flat area
        r0, _ = resolution_search(image, BoostSettings(16, 32, context_threshold=0.0, multiple_of=4))
        r20, scale = resolution_search(image, SEARCH)
        assert 16 <= r0 <= r20 and (r20 - 16) % 8 == 0 and 0 <= scale <= 1
    capped, _ = resolution_search(checkerboard(96, 4), BoostSettings(16, 32, max_size=100, multiple_of=4))
    assert capped == 96


def test_edge_map_is_binary_and_on_the_edge():
    edges = edge_map(one_edge(32))
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    assert edges[0, 0, :, 15:17].all() and edges[0, 0, :, :14].sum() == 0


def test_patches_lie_on_the_detail_largest_first():
    image = torch.full((1, 3, 128, 128), 0.5)
    assert select_patches(image, 16) == []  # flat: nothing worth refining
    image[..., 60:110, 60:110] = checkerboard(50, 3)
    patches = select_patches(image, 16)
    assert patches and [p[2] for p in patches] == sorted((p[2] for p in patches), reverse=True)
    for x, y, w, h in patches:
        assert w == h and 0 <= x and 0 <= y and x + w < 128 and y + h < 128
        assert x + w > 60 and y + h > 60  # every patch reaches into the textured square


def test_blend_mask_is_one_inside_and_fades_to_zero():
    mask = blend_mask(64, 64)[0, 0]
    assert mask.max() == 1 and mask[32, 32] == 1 and mask[0, 0] < 0.02
    assert torch.allclose(mask, mask.flip(0)) and torch.allclose(mask, mask.t())


def test_estimate_feeds_the_requested_size_and_returns_the_image_size():
    gray = Gray()
    out = estimate(gray, torch.rand(2, 3, 50, 80), 64, multiple_of=4)
    assert gray.sizes == [(40, 64)] and out.shape == (2, 1, 50, 80)
    assert out.amin((1, 2, 3)).eq(0).all() and out.amax((1, 2, 3)).eq(1).all()


def test_double_estimate_takes_the_channel_the_merge_network_keeps():
    torch.manual_seed(1)
    image = torch.rand(1, 3, 48, 48)
    high = double_estimate(Gray(), Pick(1), image, 16, 48, SETTINGS)
    expected = estimate(Gray(), image, 48, 4)
    expected = torch.nn.functional.interpolate(expected, size=(32, 32), mode="area")
    torch.testing.assert_close(high, (expected - expected.min()) / (expected.max() - expected.min()))


def test_boost_with_a_merge_that_keeps_the_base_changes_nothing_and_one_that_takes_patches_does():
    image = torch.full((1, 3, 64, 64), 0.3)
    image[..., 20:50, 10:60] = checkerboard(50, 2)[..., :30, :]
    keep = boost(Gray(), Pick(0), image, SETTINGS)
    assert keep["patches"], "the textured band should be selected"
    kept = (keep["depth"] - keep["base"]).abs()
    take = boost(Gray(), Pick(1), image, SETTINGS)
    taken = (take["depth"] - take["base"]).abs()
    assert kept.mean() < 0.01 and kept.max() < 0.08  # only the resampling round trips of 40-odd patches
    assert taken.mean() > 5 * kept.mean() and taken.max() > 0.2
    only_base = boost(Gray(), Pick(1), image, BoostSettings(16, 32, multiple_of=4, patches=False))
    assert only_base["patches"] == [] and torch.equal(only_base["depth"], only_base["base"])
    assert take["depth"].shape == (1, 1, 64, 64) and 0 <= take["depth"].min() and take["depth"].max() <= 1 + 1e-6
