"""VQGAN's loss pieces against plain references: LPIPS with unit weights as a per-pixel loop, the adaptive
weight's default and clamp, and the PatchGAN discriminator's layers and initialisation as pix2pix/taming list them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_digest.text2image.vqgan.losses import NLayerDiscriminator, adaptive_weight, feature_distance


def test_feature_distance_is_a_per_pixel_loop_of_unit_normalised_channels():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 6, 2, 3, generator=g)]
    target = [torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 6, 2, 3, generator=g)]
    feats[0][1, :, 0, 0] = torch.tensor([3e-10, -4e-10, 0.0])  # a nearly dead pixel: the 1e-10 matters
    want = []
    for b in range(2):
        total = 0.0
        for f, t in zip(feats, target):
            _, C, H, W = f.shape
            per_layer = 0.0
            for i in range(H):
                for j in range(W):
                    fv, tv = f[b, :, i, j].double(), t[b, :, i, j].double()
                    fn = fv / (fv.pow(2).sum().sqrt() + 1e-10)
                    tn = tv / (tv.pow(2).sum().sqrt() + 1e-10)
                    per_layer += float((fn - tn).pow(2).sum())
            total += per_layer / (H * W)
        want.append(total)
    got = feature_distance(feats, target)
    assert got.shape == (2,)
    torch.testing.assert_close(got.double(), torch.tensor(want, dtype=torch.double), rtol=1e-5, atol=1e-6)
    assert torch.allclose(feature_distance(feats, feats), torch.zeros(2), atol=1e-6)
    with pytest.raises(ValueError):  # a layer missing on one side is an error, not a shorter sum
        feature_distance(feats, target[:1])


def test_the_adaptive_weight_defaults_to_disc_weight_one_and_is_clamped_at_1e4():
    last = torch.tensor([[1.0, 2.0], [0.5, -1.0]], requires_grad=True)
    nll = (last * torch.tensor([[3.0, 0.0], [0.0, 4.0]])).sum()  # gradient norm 5
    g_loss = (last * torch.tensor([[0.0, 1.0], [0.0, 0.0]])).sum()  # gradient norm 1
    assert adaptive_weight(nll, g_loss, last).item() == pytest.approx(5 / (1 + 1e-4))
    # a generator loss that does not move the last layer: 5 / 1e-4 = 5e4, clamped to 1e4
    flat = (last * torch.zeros(2, 2)).sum()
    assert adaptive_weight(nll, flat, last).item() == 1e4
    assert adaptive_weight(nll, flat, last, disc_weight=0.5).item() == 5e3


def _layers(model):
    out = []
    for m in model.main:
        if isinstance(m, nn.Conv2d):
            out.append(("conv", m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.bias is not None))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(("bn", m.num_features))
        else:
            out.append(("lrelu", m.negative_slope))
    return out


def test_the_discriminator_is_pix2pix_s_patchgan():
    # taming's NLayerDiscriminator(input_nc=3, ndf=64, n_layers=3), layer by layer
    conv = lambda i, o, s, bias: ("conv", i, o, (4, 4), (s, s), (1, 1), bias)  # noqa: E731
    want = [conv(3, 64, 2, True), ("lrelu", 0.2),
            conv(64, 128, 2, False), ("bn", 128), ("lrelu", 0.2),
            conv(128, 256, 2, False), ("bn", 256), ("lrelu", 0.2),
            conv(256, 512, 1, False), ("bn", 512), ("lrelu", 0.2),
            conv(512, 1, 1, True)]
    assert _layers(NLayerDiscriminator()) == want
    # more layers: the width stops at 8x; one layer: a single widening layer at stride 1
    assert [x[2] for x in _layers(NLayerDiscriminator(layers=5, channels=2)) if x[0] == "conv"] == [2, 4, 8, 16, 16,
                                                                                                    16, 1]
    assert _layers(NLayerDiscriminator(in_channels=1, channels=1, layers=1)) == [
        conv(1, 1, 2, True), ("lrelu", 0.2), conv(1, 2, 1, False), ("bn", 2), ("lrelu", 0.2), conv(2, 1, 1, True)]
    # a 64 x 64 image: 32, 16, 8 after the strided layers, 7 and 6 after the two stride-1 ones
    assert NLayerDiscriminator(channels=4)(torch.randn(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    for bad in (dict(layers=0), dict(channels=0)):
        with pytest.raises(ValueError, match="layers >= 1 and channels >= 1"):
            NLayerDiscriminator(**bad)


def test_the_discriminator_starts_from_taming_s_initialisation():
    torch.manual_seed(0)
    model = NLayerDiscriminator()
    convs = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Conv2d)])
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    gains = torch.cat([m.weight for m in norms])
    assert abs(convs.mean().item()) < 1e-3 and convs.std().item() == pytest.approx(0.02, rel=0.02)
    assert gains.mean().item() == pytest.approx(1.0, abs=0.005) and gains.std().item() == pytest.approx(0.02, rel=0.1)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)
