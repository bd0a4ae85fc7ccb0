"""Gated convolutions against a hand computation, TensorFlow's LRN, the U-net's shapes, the spectral norm."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.gan import GatedConv2d, GatedConvTranspose2d, SCFEGANGenerator, SNPatchGAN
from lit_digest.gan.layers import tf_local_response_norm


def _conv_at(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """One output pixel of a 3x3, stride-1, zero-padded convolution, by the sum in its definition."""
    c_out, c_in, k, _ = weight.shape
    out = bias.clone()
    for o in range(c_out):
        for c in range(c_in):
            for di in range(k):
                for dj in range(k):
                    y, x_ = i + di - 1, j + dj - 1
                    if 0 <= y < x.shape[1] and 0 <= x_ < x.shape[2]:
                        out[o] += weight[o, c, di, dj] * x[c, y, x_]
    return out  # (C_out,)


@pytest.mark.parametrize("activation", ["leaky_relu", "none"])
def test_gated_conv_is_phi_of_features_times_sigmoid_of_gate(activation):
    torch.manual_seed(0)
    layer = GatedConv2d(2, 3, 3, activation=activation)
    x = torch.randn(1, 2, 4, 5)
    out = layer(x)[0]
    wf, bf = layer.feature.weight.detach(), layer.feature.bias.detach()
    wg, bg = layer.gate.weight.detach(), layer.gate.bias.detach()
    for i in range(4):
        for j in range(5):
            f, g = _conv_at(x[0], wf, bf, i, j), _conv_at(x[0], wg, bg, i, j)
            phi = torch.where(f > 0, f, 0.2 * f) if activation == "leaky_relu" else f
            torch.testing.assert_close(out[:, i, j], phi / (1 + torch.exp(-g)), rtol=1e-5, atol=1e-6)


def test_lrn_is_tensorflows_and_sits_on_the_feature_branch():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 3, 3)
    # tf.nn.lrn(x, depth_radius=5, bias=5e-5, alpha=1, beta=0.5): x / (bias + sum_{|c'-c|<=5} x_c'^2) ** 0.5
    window = torch.stack([(x[:, max(0, c - 5): c + 6] ** 2).sum(1) for c in range(16)], 1)
    torch.testing.assert_close(tf_local_response_norm()(x), x / (5e-5 + window) ** 0.5)
    layer = GatedConv2d(3, 16, 3, lrn=True)
    y = torch.randn(1, 3, 6, 6)
    lrn_features = tf_local_response_norm()(layer.feature(y))
    expected = torch.nn.functional.leaky_relu(lrn_features, 0.2) * torch.sigmoid(layer.gate(y))
    torch.testing.assert_close(layer(y), expected)


def test_gated_transposed_conv_doubles_the_size_and_gates():
    torch.manual_seed(0)
    for kernel in (3, 4, 5):
        layer = GatedConvTranspose2d(4, 2, kernel, 2)
        x = torch.randn(2, 4, 5, 7)
        out = layer(x)
        assert out.shape == (2, 2, 10, 14)
        expected = torch.nn.functional.leaky_relu(layer.feature(x), 0.2) * torch.sigmoid(layer.gate(x))
        torch.testing.assert_close(out, expected)


def test_paper_generator_layout_and_shapes():
    g = SCFEGANGenerator()  # the paper's, 512 px
    assert g.size_multiple == 128
    assert [layer.feature.kernel_size[0] for layer in g.encoder] == [7, 5, 5, 3, 3, 3, 3]
    assert [layer.feature.out_channels for layer in g.encoder] == [64, 128, 256, 512, 512, 512, 512]
    assert [m.feature.dilation[0] for m in g.bottleneck] == [2, 4, 8, 16]
    # LRN everywhere but the input and output layers and the transposed convolutions
    lrn = [not isinstance(layer.norm, torch.nn.Identity) for layer in g.encoder]
    assert lrn == [False] + [True] * 6 and all(not isinstance(m.norm, torch.nn.Identity) for m in g.bottleneck)
    assert [not isinstance(f.norm, torch.nn.Identity) for f in g.fuse] == [True] * 6 + [False]
    assert all(isinstance(u.norm, torch.nn.Identity) for u in g.up)
    assert isinstance(g.fuse[-1].phi, torch.nn.Identity) and g.fuse[-1].feature.in_channels == 3 + 9
    small = SCFEGANGenerator(widths=(8, 16), kernels=(5, 3), dilations=(2,))
    out = small(torch.randn(2, 9, 12, 8))
    assert out.shape == (2, 3, 12, 8) and out.abs().max() <= 1
    with pytest.raises(ValueError, match="multiples of 4"):
        small(torch.randn(1, 9, 10, 8))
    with pytest.raises(ValueError, match=r"\(B, 9, H, W\)"):
        small(torch.randn(1, 8, 8, 8))


def test_spectral_norm_keeps_each_critic_layer_near_one():
    torch.manual_seed(0)
    critic = SNPatchGAN(in_channels=8, widths=(16, 32, 32, 32), kernel_size=3)
    assert critic(torch.randn(2, 8, 32, 32)).shape == (2, 32, 2, 2)
    with torch.no_grad():
        for conv in critic.convs():  # scale the raw weights far from norm 1
            conv.parametrizations.weight.original.mul_(7.0)
        for _ in range(30):  # power iteration: one step per training forward
            critic(torch.randn(2, 8, 32, 32))
    critic.eval()
    for conv in critic.convs():
        w = conv.weight.detach().flatten(1)  # the normalised weight, (C_out, C_in * k * k)
        raw = conv.parametrizations.weight.original.detach().flatten(1)
        assert torch.linalg.matrix_norm(raw, ord=2) > 3
        assert math.isclose(torch.linalg.matrix_norm(w, ord=2).item(), 1.0, rel_tol=0.02)


def test_an_injected_critic_loads_from_a_checkpoint_without_trusting_a_function(tmp_path, quiet_trainer):
    """Before: SNPatchGAN pickled through a module-level function, which ``load_from_checkpoint(path)`` (weights
    only) refuses: "needs lit_digest.gan.patchgan._rebuild to load"."""
    import copy

    from lit_digest.gan import SCFEGAN

    torch.manual_seed(0)
    critic = SNPatchGAN(in_channels=8, widths=(8, 16), kernel_size=3).eval()
    model = SCFEGAN(SCFEGANGenerator(widths=(8, 16), kernels=(5, 3), dilations=(2,)), critic)
    trainer = quiet_trainer()
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = SCFEGAN.load_from_checkpoint(tmp_path / "model.ckpt").discriminator
    for rebuilt in (loaded, copy.deepcopy(critic)):
        assert isinstance(rebuilt, SNPatchGAN) and not rebuilt.training
        x = torch.randn(2, 8, 16, 16)
        torch.testing.assert_close(rebuilt(x), critic(x))
