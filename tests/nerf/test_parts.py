"""The parts of the two stages: the MLP's skips and colour branch, the hypernetwork's layers, the losses, AdaIN,
VGG-16's relu_x_1 layers and NeRF++'s composition."""

from __future__ import annotations

import pytest
import torch
import torchvision

from lit_digest.core.vgg import VGG16Features
from lit_digest.nerf.adain import adain
from lit_digest.nerf.field import NeRFMLP, RadianceField
from lit_digest.nerf.hyper import StyleHyperNetwork, feature_statistics
from lit_digest.nerf.losses import content_loss, style_loss


def test_the_mlp_concatenates_the_input_after_its_skip_layers_and_takes_colour_layers_from_outside():
    torch.manual_seed(0)
    net = NeRFMLP(3, pos_freqs=2, dir_freqs=1, depth=4, width=8, skips=(1,), color_widths=(4,))
    assert [layer.in_features for layer in net.trunk] == [15, 8, 8 + 15, 8]
    assert net.color_shapes() == [(8 + 9, 4), (4, 3)]
    x, dirs = torch.randn(5, 3), torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    _, feature = net.density(x)
    own = net.radiance(feature, dirs)
    given = [(layer.weight, layer.bias) for layer in net.color]
    # given weights run with LayerNorm before each hidden ReLU (the official HyperLayer)
    h = torch.cat([feature, torch.cat([dirs, torch.sin(dirs), torch.cos(dirs)], -1)], -1)
    h = torch.relu(torch.nn.functional.layer_norm(net.color[0](h), (4,)))
    torch.testing.assert_close(net.radiance(feature, dirs, given), torch.sigmoid(net.color[1](h)))
    assert not torch.allclose(own, net.radiance(feature, dirs, given))


def test_the_hypernetwork_predicts_every_colour_layer_and_the_style_changes_colour_not_density():
    torch.manual_seed(0)
    field = RadianceField(depth=2, width=16, skips=(0,), color_widths=(8,), coarse_samples=6, fine_samples=6,
                          background_samples=(4, 4))
    hyper = StyleHyperNetwork(10, {"fg": field.fine.color_shapes(), "bg": field.bg_fine.color_shapes()})
    params = hyper(torch.randn(10))
    for name, net in (("fg", field.fine), ("bg", field.bg_fine)):
        assert [(w.shape[1], w.shape[0]) for w, _ in params[name]] == net.color_shapes()
        assert [b.shape[0] for _, b in params[name]] == [o for _, o in net.color_shapes()]
    o, d = torch.zeros(4, 3), torch.randn(4, 3)
    near, far = torch.full((4,), 1e-4), torch.full((4,), 2.0)
    a = field.render(o, d, near, far, color_params=params)
    b = field.render(o, d, near, far, color_params=hyper(torch.randn(10)))
    torch.testing.assert_close(a["depth"], b["depth"], atol=0, rtol=0)
    assert not torch.allclose(a["rgb"], b["rgb"])
    with pytest.raises(ValueError, match="one style image"):
        hyper(torch.randn(2, 10))


def _constant(net, density: float, colour: float) -> None:
    with torch.no_grad():
        net.sigma.weight.zero_()
        net.sigma.bias.fill_(density)
        net.color[-1].weight.zero_()
        net.color[-1].bias.fill_(torch.logit(torch.tensor(colour)).item())


def test_the_background_shows_through_an_empty_foreground_and_not_through_a_dense_one():
    """NeRF++ composition: colour = foreground + (transmittance left) x background."""
    torch.manual_seed(0)
    field = RadianceField(depth=2, width=16, skips=(0,), color_widths=(8,), coarse_samples=6, fine_samples=6,
                          background_samples=(4, 4))
    for net in (field.bg_coarse, field.bg_fine):
        _constant(net, 50.0, 0.3)
    for net in (field.coarse, field.fine):
        _constant(net, -5.0, 0.7)  # relu: no density at all
    o, d = torch.zeros(3, 3), torch.randn(3, 3)
    near, far = torch.full((3,), 1e-4), torch.full((3,), 2.0)
    out = field.render(o, d, near, far)
    torch.testing.assert_close(out["opacity"], torch.zeros(3))
    torch.testing.assert_close(out["rgb"], torch.full((3, 3), 0.3))
    for net in (field.coarse, field.fine):
        _constant(net, 50.0, 0.7)
    torch.testing.assert_close(field.render(o, d, near, far)["rgb"], torch.full((3, 3), 0.7))
    with pytest.raises(ValueError, match="own background"):
        RadianceField(unbounded=True, white_background=True)


def test_content_and_style_losses_match_their_definitions():
    torch.manual_seed(0)
    out = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)]
    style = [torch.randn(1, 4, 8, 8), torch.randn(1, 6, 4, 4)]
    torch.testing.assert_close(content_loss(out, style[:1] + [out[1] + 1]), torch.tensor(1.0))
    naive = []
    for b in range(2):
        for o, s in zip(out, style):
            for c in range(o.shape[1]):
                naive += [(o[b, c].mean() - s[0, c].mean()) ** 2, (o[b, c].std() - s[0, c].std()) ** 2]
    torch.testing.assert_close(style_loss(out, style), torch.stack(naive).mean(), atol=1e-4, rtol=1e-4)
    stats = feature_statistics(style[0])
    torch.testing.assert_close(stats[0, :4], style[0][0].flatten(1).mean(-1))


def test_adain_gives_the_content_the_style_statistics():
    torch.manual_seed(0)
    content, style = torch.randn(2, 3, 5, 5), torch.randn(1, 3, 4, 4) * 3 + 2
    out = adain(content, style)
    torch.testing.assert_close(out.flatten(2).mean(-1), style.flatten(2).mean(-1).expand(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.flatten(2).std(-1), style.flatten(2).std(-1).expand(2, 3), atol=1e-3, rtol=1e-3)
    normalised = (content - content.mean((2, 3), keepdim=True)) / content.std((2, 3), keepdim=True)
    torch.testing.assert_close((out - out.mean((2, 3), keepdim=True)) / out.std((2, 3), keepdim=True), normalised,
                               atol=1e-3, rtol=1e-3)


def test_vgg16_relu_layers_are_torchvisions_first_relu_of_each_block():
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"]).eval()
    vgg = VGG16Features(("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
                        state_dict={f"features.{k}": v for k, v in features.state_dict().items()})
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    out = vgg(x)
    h = ((x + 1) / 2 - vgg.mean) / vgg.std
    expected = []
    for i, layer in enumerate(features[:19]):
        h = layer(h)
        if i in (1, 6, 11, 18):
            expected.append(h.clone())
    for got, want in zip(out, expected):
        torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="network order"):
        VGG16Features(("relu2_1", "relu1_1"))


def test_animations_are_gifs_or_mp4s_and_mp4_without_ffmpeg_says_how_to_get_it(tmp_path, monkeypatch):
    import importlib.util

    import imageio.v3 as iio

    from lit_digest.nerf import images

    frames = [torch.rand(3, 16, 16) for _ in range(4)]
    assert iio.imread(images.write_gif(tmp_path / "a.gif", frames), index=None).shape == (4, 16, 16, 3)
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        import imageio.v2 as iio2

        assert sum(1 for _ in iio2.get_reader(str(images.write_gif(tmp_path / "a.mp4", frames)))) == 4
    monkeypatch.setattr(images.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install imageio-ffmpeg"):
        images.write_gif(tmp_path / "b.mp4", frames)
