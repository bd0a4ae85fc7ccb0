"""The shape calculator against PyTorch itself: output sizes of random stacks on the ``meta`` device, the exact
input region of a pixel against the support of its gradient, known receptive fields, the CLI."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn

from lit_digest.tools.shapes import Layer, Network, ShapeError, parse_layer, receptive_field
from lit_digest.tools.shapes.__main__ import main
from lit_digest.tools.shapes.trace import layer_of_module
from tests.helpers import ROOT

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONVT = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAX = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


def random_layer(rng: random.Random, n: int, kinds: tuple[str, ...], channels: int) -> nn.Module:
    """A random torch layer, sometimes one PyTorch refuses for the input at hand (both sides must agree)."""
    kind = rng.choice(kinds)
    k = tuple(rng.randint(1, 5) for _ in range(n))
    s = tuple(rng.randint(1, 3) for _ in range(n))
    d = tuple(rng.randint(1, 3) for _ in range(n))
    if kind == "conv":
        mode = rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"])
        if rng.random() < 0.2:
            return _CONV[n](channels, channels, k, 1, padding=rng.choice(["same", "valid"]), dilation=d,
                            padding_mode=mode, bias=False)
        p = tuple(rng.randint(0, 3) for _ in range(n))
        return _CONV[n](channels, channels, k, s, p, d, padding_mode=mode, bias=False)
    if kind == "convT":
        p = tuple(rng.randint(0, 2) for _ in range(n))
        op = tuple(rng.randint(0, max(a, b) - 1) if rng.random() < 0.95 else max(a, b) for a, b in zip(s, d))
        return _CONVT[n](channels, channels, k, s, p, op, dilation=d, bias=False)
    if kind in ("max", "avg"):
        p = tuple(rng.randint(0, kk // 2 + (rng.random() < 0.1)) for kk in k)
        stride = None if rng.random() < 0.3 else s
        if kind == "max":
            return _MAX[n](k, stride, p, dilation=d, ceil_mode=rng.random() < 0.5)
        return _AVG[n](k, stride, p, ceil_mode=rng.random() < 0.5)
    if kind == "adaptive":
        return (nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool3d)[n - 1](rng.randint(1, 6))
    mode = rng.choice(["nearest", "nearest-exact", "linear"])
    mode = {"linear": ("linear", "bilinear", "trilinear")[n - 1]}.get(mode, mode)
    align = None if mode.startswith("nearest") else rng.random() < 0.5
    if rng.random() < 0.3:
        return nn.Upsample(size=tuple(rng.randint(1, 20) for _ in range(n)), mode=mode, align_corners=align)
    return nn.Upsample(scale_factor=rng.choice([0.5, 1.5, 2.0, 3.0]), mode=mode, align_corners=align)


ALL_KINDS = ("conv", "conv", "convT", "max", "avg", "adaptive", "up")


def _run(model: nn.Module, shape: tuple[int, ...], device: str) -> tuple[int, ...] | None:
    """The output shape (without the batch) of ``model`` on ``device``, or None when PyTorch refuses the input."""
    try:
        return tuple(model(torch.zeros(shape, device=device)).shape[1:])
    except (RuntimeError, ValueError, TypeError):
        return None


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_output_sizes_agree_with_torch_on_meta_over_many_random_stacks():
    """500 random stacks (1d/2d/3d, 1-5 layers, every padding mode, dilation, ceil mode, output padding): the
    calculator accepts a stack exactly when PyTorch runs it, and gives PyTorch's output size."""
    rng = random.Random(0)
    agreed, refused, meta_only = 0, 0, 0
    for case in range(500):
        n = rng.choice([1, 2, 2, 2, 3])
        layers = [random_layer(rng, n, ALL_KINDS, 2) for _ in range(rng.randint(1, 5))]
        size = tuple(rng.randint(1, 24 if n < 3 else 10) for _ in range(n))
        model = nn.Sequential(*layers)
        expected = _run(model.to("meta"), (1, 2, *size), "meta")
        try:
            got = Network.from_module(model).shapes((2, *size))[-1]
        except ShapeError:
            got = None
        if got != expected:  # the meta kernels skip (or trip over) a few checks: then the real layers decide
            expected = _run(model.to_empty(device="cpu"), (1, 2, *size), "cpu")
            meta_only += 1
        assert got == expected, f"case {case}: {model} on {size}: torch {expected}, calculator {got}"
        agreed += got is not None
        refused += got is None
    assert agreed > 200 and refused > 30 and meta_only < 25, (agreed, refused, meta_only)  # both sides exercised


def _gradient_box(model: nn.Module, shape: tuple[int, ...], pixel: tuple[int, ...]) -> tuple | None:
    """Bounding box of the input pixels with a non-zero gradient of one output pixel. Positive weights and
    inputs: no cancellation, so the support is exactly the pixels the output reads."""
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.5, 1.0)
    x = torch.rand(1, *shape, dtype=torch.float64).add_(0.5).requires_grad_(True)
    y = model.double()(x)
    y[(0, 0, *pixel)].backward()
    support = x.grad[0].abs().sum(0).nonzero()
    if not len(support):
        return None  # the pixel reads zero padding only
    return tuple((int(support[:, d].min()), int(support[:, d].max())) for d in range(support.shape[1]))


@pytest.mark.parametrize("seed", range(4))
def test_input_region_is_the_support_of_the_gradient_of_an_output_pixel(seed):
    """Random stacks of convolutions (zero / reflect / replicate / circular padding), transposed
    convolutions, average pooling and nearest / linear upsampling: the box ``input_region`` gives for the
    centre pixel and for random pixels is the bounding box of the pixels whose gradient is non-zero."""
    rng = random.Random(100 + seed)
    checked = 0
    while checked < 25:
        n = rng.choice([1, 2])
        layers = [random_layer(rng, n, ("conv", "conv", "convT", "avg", "up"), 1) for _ in range(rng.randint(1, 4))]
        size = tuple(rng.randint(8, 40) for _ in range(n))
        model = nn.Sequential(*layers)
        net = Network.from_module(model)
        try:
            out = net.shapes((1, *size))[-1][1:]
        except ShapeError:
            continue
        pixels = [tuple(v // 2 for v in out)] + [tuple(rng.randrange(v) for v in out) for _ in range(2)]
        for pixel in pixels:
            expected = _gradient_box(model, (1, *size), pixel)
            if expected is None:
                with pytest.raises(ShapeError, match="does not depend"):
                    net.input_region((1, *size), pixel)
            else:
                assert net.input_region((1, *size), pixel) == expected, (model, size, pixel)
        checked += 1


def test_closed_form_field_is_the_exact_field_of_every_pixel_without_padding():
    """Unpadded convolutions (dilated, strided) and pooling: no output pixel reads outside the input at any
    level, so the closed form (size, jump, start) is the exact field of every output pixel."""
    rng = random.Random(7)
    checked = 0
    while checked < 40:
        layers = []
        for _ in range(rng.randint(1, 5)):
            k, s, d = rng.randint(1, 4), rng.randint(1, 3), rng.randint(1, 3)
            layers.append(rng.choice([nn.Conv2d(1, 1, k, s, 0, d), nn.MaxPool2d(k, s, 0, d), nn.AvgPool2d(k, s)]))
        net = Network.from_module(nn.Sequential(*layers))
        try:
            field, out = net.fields((1, 120, 90))[-1], net.shapes((1, 120, 90))[-1][1:]
        except ShapeError:
            continue
        for pixel in [(0, 0), tuple(v // 2 for v in out), tuple(v - 1 for v in out)]:
            for d, (lo, hi) in enumerate(net.input_region((1, 120, 90), pixel)):
                assert hi - lo + 1 == field.size[d], (layers, pixel)
                assert (lo + hi) / 2 == field.start[d] + pixel[d] * field.jump[d], (layers, pixel)
        checked += 1


def test_maxpool_region_covers_the_gradient_and_transposed_fields_bound_every_pixel():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(3, 2, 1), nn.ConvTranspose2d(1, 1, 3, 2, 1))
    net = Network.from_module(model)
    field = net.fields((1, 32, 32))[-1]
    x = torch.randn(1, 1, 32, 32, requires_grad=True)
    for pixel in [(15, 15), (16, 17), (10, 3)]:
        x.grad = None
        model(x)[(0, 0, *pixel)].backward()
        support = x.grad[0, 0].nonzero()
        region = net.input_region((1, 32, 32), pixel)
        for d in range(2):
            assert region[d][0] <= int(support[:, d].min()) and int(support[:, d].max()) <= region[d][1]
            assert region[d][1] - region[d][0] + 1 <= field.size[d]


def test_known_receptive_fields():
    """Araujo, Norris, Sim (Distill 2019, table of receptive fields): AlexNet 195, VGG-16 212, ResNet-18's last
    stage 435, effective stride 32."""
    with torch.device("meta"):  # no weights needed
        nets = [(torchvision.models.alexnet(), 195), (torchvision.models.vgg16(), 212)]
        resnet = Network.from_module(torchvision.models.resnet18())
    for net, rf in nets:
        field = receptive_field(net.features, (3, 224, 224))
        assert field.size == (rf, rf) and field.jump == (32, 32)
    names = [node.name for node in resnet.nodes]
    assert resnet.fields((3, 224, 224))[names.index("layer4.1.conv2")].size == (435, 435)
    assert resnet.fields((3, 224, 224))[-1].is_global  # the linear head sees everything


def test_skip_connections_and_interpolation_to_another_tensors_size():
    class TinyUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = nn.Conv2d(1, 4, 4, 2, 1)
            self.inner = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
            self.out = nn.Conv2d(5, 1, 3, padding=1)

        def forward(self, x):
            y = torch.relu(self.inner(self.down(x)))
            y = nn.functional.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)
            return self.out(torch.cat([x, y], dim=1)) + x

    model = TinyUNet()
    net = Network.from_module(model)
    assert net.shapes((1, 20, 30))[-1] == (1, 20, 30)
    assert _run(TinyUNet().to("meta"), (1, 1, 20, 30), "meta") == net.shapes((1, 20, 30))[-1]
    for pixel in [(10, 15), (0, 0), (19, 7)]:
        assert net.input_region((1, 20, 30), pixel) == _gradient_box(model, (1, 20, 30), pixel)


def test_specs_parse_and_bad_specs_say_why():
    layer = parse_layer("conv:k=3x5,s=2,p=same,d=1,c=8")
    assert layer == Layer("conv", (3, 5), (2,), "same", (1,), channels=8)
    with pytest.raises(ShapeError, match="stride 1"):
        Network.from_layers([layer]).shapes((1, 9, 9))
    assert layer_of_module(nn.MaxPool2d(3)).stride_or_default() == (3,)
    for bad, message in [("pool:k=2", "unknown layer"), ("conv:k", "key=value"), ("up:mode=nearest", "scale and size"),
                         ("conv:q=3", "key=value")]:
        with pytest.raises(ShapeError, match=message):
            parse_layer(bad)


def test_cli_prints_a_table_and_fails_clearly(capsys):
    assert main(["--input", "3x64x64", "conv:k=3,p=1,c=16", "maxpool:k=2", "convT:k=4,s=2,p=1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["#", "node", "layer", "output"]
    assert "16x32x32" in out and "16x64x64" in out
    assert "output pixel (32,32) reads input box" in out
    assert main(["--input", "3x4x4", "conv:k=7"]) == 2
    assert "larger than the padded input" in capsys.readouterr().err
    assert main(["--input", "1x32x32", "--module", "torch.nn.Conv2d", "--init",
                 '{"in_channels": 1, "out_channels": 2, "kernel_size": 5}']) == 0
    assert "2x28x28" in capsys.readouterr().out


def test_the_tool_imports_no_lightning():
    code = ("import sys, lit_digest.tools.shapes.__main__; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
