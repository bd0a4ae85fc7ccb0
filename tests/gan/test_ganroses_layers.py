"""GANs N' Roses' StyleGAN2 layers against the formulas written out by hand, and the official checkpoint layout."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from lit_digest.gan.ganroses.layers import ModulatedConv2d, Upsample, make_kernel, upfirdn2d
from lit_digest.gan.ganroses.networks import Discriminator, Generator, LatentDiscriminator
from lit_digest.gan.ganroses.official import PAPER, from_official, to_official
from tests.helpers import ROOT


def naive_upfirdn2d(x, kernel, up, down, pad):
    """Zero insertion, padding (negative: cropping), a convolution written as a sum of shifted copies, subsampling."""
    b, c, h, w = x.shape
    big = torch.zeros(b, c, h * up, w * up)
    big[..., ::up, ::up] = x
    p0, p1 = pad
    big = F.pad(big, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    big = big[..., max(-p0, 0): big.shape[-2] - max(-p1, 0), max(-p0, 0): big.shape[-1] - max(-p1, 0)]
    k = kernel.shape[0]
    oh, ow = big.shape[-2] - k + 1, big.shape[-1] - k + 1
    out = torch.zeros(b, c, oh, ow)
    for i in range(k):
        for j in range(k):  # a true convolution: the kernel flipped
            out += kernel[k - 1 - i, k - 1 - j] * big[..., i: i + oh, j: j + ow]
    return out[..., ::down, ::down]


@pytest.mark.parametrize(("up", "down", "pad"), [(1, 1, (1, 2)), (2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (-1, 0))])
def test_upfirdn2d_equals_a_naive_filter(up, down, pad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 7)
    kernel = torch.rand(4, 4)  # not symmetric: the flip matters
    torch.testing.assert_close(upfirdn2d(x, kernel, up, down, pad), naive_upfirdn2d(x, kernel, up, down, pad))


def test_the_upsampling_filter_keeps_a_constant_image_constant():
    up = Upsample()
    y = up(torch.full((1, 2, 8, 8), 0.7))
    assert y.shape == (1, 2, 16, 16)
    torch.testing.assert_close(y[..., 2:-2, 2:-2], torch.full((1, 2, 12, 12), 0.7))
    assert make_kernel((1, 3, 3, 1)).sum().item() == pytest.approx(1.0)


def hand_modulated_conv(conv: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """StyleGAN2 (arXiv 1912.04958, eq. 1-3) as the official code computes it: per-sample weights, one grouped conv."""
    b, cin, h, w = x.shape
    s = F.linear(style, conv.modulation.weight * conv.modulation.scale, conv.modulation.bias * conv.modulation.lr_mul)
    weight = conv.scale * conv.weight * s.view(b, 1, cin, 1, 1)  # modulate: (B, C_out, C_in, k, k)
    if conv.demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, -1, 1, 1, 1)
    k = conv.kernel_size
    if conv.upsample:
        weight = weight.transpose(1, 2).reshape(b * cin, conv.out_channel, k, k)
        out = F.conv_transpose2d(x.reshape(1, b * cin, h, w), weight, stride=2, groups=b)
        return conv.blur(out.view(b, conv.out_channel, *out.shape[-2:]))
    out = F.conv2d(x.reshape(1, b * cin, h, w), weight.reshape(b * conv.out_channel, cin, k, k), padding=k // 2,
                   groups=b)
    return out.view(b, conv.out_channel, h, w)


@pytest.mark.parametrize(("kernel", "upsample", "demodulate"), [(3, False, True), (3, True, True), (1, False, False)])
def test_modulated_convolution_equals_the_stylegan2_formula(kernel, upsample, demodulate):
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 6, kernel, style_dim=7, demodulate=demodulate, upsample=upsample)
    with torch.no_grad():
        conv.modulation.bias.normal_()  # away from the initial 1, so that the style matters
    x, style = torch.randn(3, 5, 8, 8), torch.randn(3, 7)
    got = conv(x, style)
    torch.testing.assert_close(got, hand_modulated_conv(conv, x, style), rtol=1e-4, atol=1e-5)
    assert got.shape == (3, 6, 16 if upsample else 8, 16 if upsample else 8)
    torch.testing.assert_close(got[:1], conv(x[:1], style[:1]), rtol=1e-4, atol=1e-5)  # per-sample weights


def test_networks_split_content_and_style_and_decode_to_images():
    torch.manual_seed(0)
    g = Generator(size=32, num_down=2)
    content, style = g.encode(torch.randn(2, 3, 32, 32))
    assert content.shape == (2, 32, 8, 8) and style.shape == (2, 8)
    assert g.decode(content, torch.randn(2, 8)).shape == (2, 3, 32, 32)
    scores = Discriminator(size=32)(torch.randn(2, 3, 32, 32))
    assert [tuple(s.shape) for s in scores] == [(2, 1, 8, 8), (2, 1, 4, 4), (2, 1)]
    assert LatentDiscriminator()(torch.randn(5, 8))[0].shape == (5, 1)
    with pytest.raises(ValueError, match="encoder takes"):
        g.encode(torch.randn(2, 1, 32, 32))


def test_the_official_layout_has_the_official_key_names_and_shapes():
    """Our paper-scale networks written out with ``to_official`` have exactly the keys and shapes of the official
    model.py's ``state_dict`` (listed in the fixture from the official code), and read back unchanged."""
    listing = json.loads((ROOT / "tests/fixtures/ganroses/official_keys_256.json").read_text())
    sizes = dict(size=PAPER["image_size"], channel_base=PAPER["channel_base"], channel_max=PAPER["channel_max"])
    with torch.device("meta"):
        nets = {"G_A2B": Generator(num_down=PAPER["num_down"], style_dim=PAPER["style_dim"], **sizes),
                "D_A": Discriminator(local_size=32, global_size=8, **sizes), "D_L": LatentDiscriminator(8)}
    for entry, net in nets.items():
        written = {k: list(v.shape) for k, v in to_official(net).items()}
        assert written == listing[entry], entry


def test_official_weights_load_by_name_and_a_wrong_size_is_named():
    torch.manual_seed(0)
    g, other = Generator(), Generator()
    state = to_official(g)
    assert "conv1.conv.weight" in state and "encoder.stem.1.conv2.2.bias" in state  # decoder at the top, Sequential
    from_official(other, state)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(other(x, torch.zeros(2, 8)), g(x, torch.zeros(2, 8)))
    with pytest.raises(ValueError, match="num-down"):
        from_official(Generator(num_down=3), state)
    state["encoder.stem.1.conv2.0.kernel"] = torch.ones(4, 4)
    with pytest.raises(ValueError, match="blur kernels"):
        from_official(other, state)
