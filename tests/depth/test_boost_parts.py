"""The merge network's parts: the guided filter against a per-window loop, the training-pair construction, the
pix2pix networks against the published parameter counts and receptive field, the GAN losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lit_digest.depth.boost.guided import guided_filter, merge_training_pair, normalize01, official_radius
from lit_digest.depth.boost.losses import discriminator_loss, generator_loss
from lit_digest.depth.boost.nets import MergeUNet, PatchDiscriminator
from lit_digest.depth.boost.system import linear_decay
from lit_digest.tools.shapes import receptive_field


def _naive_guided_filter(guide: torch.Tensor, source: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He et al. (TPAMI 2013) Algorithm 1, one window at a time (windows cut at the borders), float64."""
    h, w = guide.shape
    a, b = torch.zeros(h, w, dtype=torch.float64), torch.zeros(h, w, dtype=torch.float64)

    def window(y, x):
        return slice(max(y - r, 0), min(y + r, h - 1) + 1), slice(max(x - r, 0), min(x + r, w - 1) + 1)

    for y in range(h):
        for x in range(w):
            i, p = guide[window(y, x)].double(), source[window(y, x)].double()
            cov = (i * p).mean() - i.mean() * p.mean()
            a[y, x] = cov / (i.var(unbiased=False) + eps)
            b[y, x] = p.mean() - a[y, x] * i.mean()
    out = torch.zeros(h, w, dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            out[y, x] = a[window(y, x)].mean() * guide[y, x] + b[window(y, x)].mean()
    return out


def test_guided_filter_equals_the_per_window_algorithm():
    torch.manual_seed(0)
    guide, source = torch.rand(9, 7, dtype=torch.float64), torch.rand(9, 7, dtype=torch.float64)
    for r, eps in [(1, 1e-3), (2, 1e-8), (4, 0.05)]:
        got = guided_filter(guide[None, None], source[None, None], r, eps)[0, 0]
        torch.testing.assert_close(got, _naive_guided_filter(guide, source, r, eps))


def test_guided_filter_transfers_the_guide_onto_an_affine_source():
    torch.manual_seed(1)
    guide = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(guided_filter(guide, 3 * guide + 1, 5, 1e-10), 3 * guide + 1)
    smooth = torch.linspace(0, 1, 32, dtype=torch.float64).view(1, 1, 1, 32).expand(1, 1, 32, 32)
    step = (torch.arange(32) >= 16).double().view(1, 1, 1, 32).expand(1, 1, 32, 32)
    out = guided_filter(step, smooth, 4, 1e-8)  # the guide's sharp edge on the source's ramp
    assert (out[..., 17] - out[..., 14]).min() > 0.15  # the ramp alone rises 3/31 there
    assert (out[..., 6:9] - smooth[..., 6:9]).abs().max() < 0.02  # flat guide, away from borders: the local mean


def test_training_pair_ranges_and_identity():
    torch.manual_seed(2)
    d = torch.rand(2, 1, 24, 24) * 5 + 1
    x, y = merge_training_pair(d, d, d, radius=3)
    assert x.shape == (2, 2, 24, 24) and y.shape == (2, 1, 24, 24)
    torch.testing.assert_close(y, normalize01(d) * 2 - 1)
    torch.testing.assert_close(x[:, :1], y, atol=1e-4, rtol=0)  # identical maps: both inputs are the target
    torch.testing.assert_close(x[:, 1:], y, atol=1e-4, rtol=0)
    x, y = merge_training_pair(torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24), d, radius=3)
    assert x.min() >= -1 and x.max() <= 1 and x.amin((2, 3)).eq(-1).all() and x.amax((2, 3)).eq(1).all()
    assert official_radius(672) == 64 and official_radius(128) == 12


def test_generator_and_discriminator_match_pix2pix():
    """pix2pix prints 54.414 M parameters for ``unet_256`` and 2.769 M for ``basic`` D (3 + 3 channels, batch
    norm): the same networks without BatchNorm's 2 x (channels) parameters are ours with bias=False."""
    with torch.device("meta"):  # counts only
        g = MergeUNet(3, 3, num_downs=8, ngf=64)
    g_bn = 2 * (128 + 256 + 512 * 4) + 2 * (512 * 4 + 256 + 128 + 64)  # downnorms and upnorms of unet_256
    assert round((sum(p.numel() for p in g.parameters()) + g_bn) / 1e6, 3) == 54.414
    d = PatchDiscriminator(6, 64, 3)
    assert round((sum(p.numel() for p in d.parameters()) + 2 * (128 + 256 + 512)) / 1e6, 3) == 2.769
    assert receptive_field(d, (6, 256, 256)).size == (70, 70)  # "70 x 70 PatchGAN"
    with torch.device("meta"):  # unet_1024: 10 down-samplings of a 1024 px input to 1 px, 2 -> 1 channels
        out = MergeUNet()(torch.empty(1, 2, 1024, 1024))
    assert out.shape == (1, 1, 1024, 1024)
    small = MergeUNet(2, 1, num_downs=5, ngf=4)
    y = small(torch.randn(3, 2, 64, 64))
    assert y.shape == (3, 1, 64, 64) and y.abs().max() < 1
    assert all(m.bias is None for m in list(small.downs) + list(small.ups)[1:])
    assert [round(float(m.weight.detach().std()), 2) for m in small.downs[2:]] == [0.02] * 3  # N(0, 0.02) init
    with pytest.raises(ValueError, match="num_downs >= 5"):
        MergeUNet(num_downs=4)


def test_gan_losses_and_the_linear_decay():
    logits = torch.zeros(2, 1, 5, 5)
    assert discriminator_loss(logits, logits).item() == pytest.approx(float(torch.log(torch.tensor(2.0))))
    fake, target = torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.5)
    gan, l1 = generator_loss(torch.full((1, 1, 3, 3), 20.0), fake, target, 1000.0)
    assert gan.item() < 1e-6 and l1.item() == pytest.approx(500.0)
    assert F.binary_cross_entropy_with_logits(torch.tensor([20.0]), torch.tensor([1.0])) < 1e-6
    assert [linear_decay(s, 100, 0.5) for s in (0, 50, 75)] == [1.0, 1.0, pytest.approx(1 - 25 / 51)]
    assert linear_decay(100, 100, 0.5) == pytest.approx(1 / 51)
