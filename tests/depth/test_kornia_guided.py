"""The guided filter beside ``kornia.filters.guided_blur``: equal away from the border, where both average full
windows; at the border He et al.'s box filter shrinks the window and kornia pads the image, so they differ there
(docs/libraries.md: we keep ours, also for its O(1)-per-pixel box filter at the official radius)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lit_digest.depth.boost.guided import guided_filter

kornia = pytest.importorskip("kornia")


@pytest.mark.parametrize("eps", [1e-2, 1e-8])
def test_equal_to_kornias_guided_blur_away_from_the_border(eps):
    g = torch.Generator().manual_seed(0)
    guide = F.interpolate(torch.rand(2, 1, 12, 12, generator=g), size=72, mode="bicubic")
    source = guide + 0.1 * torch.rand(2, 1, 72, 72, generator=g)
    r = 5
    ours = guided_filter(guide, source, r, eps)
    theirs = kornia.filters.guided_blur(guide, source, 2 * r + 1, eps)
    inside = (slice(None), slice(None), slice(2 * r, -2 * r), slice(2 * r, -2 * r))
    assert (ours - theirs)[inside].abs().max() < 1e-4
    assert (ours - theirs).abs().max() > 10 * (ours - theirs)[inside].abs().max()  # the border convention differs
