"""The notebooks' prompt syntax, the spherical distance loss, the straight-through quantiser and the gradient clamp."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.core.console import user_error
from lit_digest.text2image.generate.cutouts import ClampWithGrad, MakeCutouts, straight_through_quantize
from lit_digest.text2image.generate.prompts import parse_prompts, prompt_loss, spherical_distance

INF = math.inf
PARSED = [
    ("a red circle", [("a red circle", 1.0, -INF)]),
    ("a red circle | blue background:0.5 | text:-1",
     [("a red circle", 1.0, -INF), ("blue background", 0.5, -INF), ("text", -1.0, -INF)]),
    ("sky:2:0.3", [("sky", 2.0, 0.3)]),
    ("  spaced words  :  1.5 ", [("spaced words", 1.5, -INF)]),
    ("away:-0.5:-0.9", [("away", -0.5, -0.9)]),
    ("1e-1 things:1e-1", [("1e-1 things", 0.1, -INF)]),
    ("a|b:3", [("a", 1.0, -INF), ("b", 3.0, -INF)]),
    ("a:2:-inf", [("a", 2.0, -INF)]),  # the stop's default written out
]
BAD = [
    ("", "empty"), ("   ", "empty"), ("|", "empty"), ("a | ", "empty part"), ("a:b", "is not a number"),
    ("a:0.5:x", "is not a number"), ("time: 5pm", "is not a number"), (":0.5", "no text"),
    ("a:0", "weight of 0"), ("a:inf", "finite"), ("a:nan", "finite"), ("x:1:2:3", "3 colons"),
    ("a:0.5:x", "the stop 'x' is not a number; write 'text', 'text:weight' or 'text:weight:stop'"),
    ("a:b:0.5", "the weight 'b' is not a number"), ("a:-inf", "the weight must be finite"),
    ("a:1:inf", "the stop must be finite"), ("a:1:nan", "the stop must be finite"),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_prompts_parse_as_the_notebooks_syntax(text, expected):
    assert [(p.text, p.weight, p.stop) for p in parse_prompts(text)] == expected


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_prompt_is_one_clear_error(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_prompts(text)
    assert user_error(info.value) is not None  # the CLI prints it as one line
    assert "\n" not in str(info.value)


def test_the_spherical_distance_is_half_the_squared_angle():
    torch.manual_seed(0)
    x, e = torch.randn(5, 8) * 3, torch.randn(4, 8) * 0.2
    got = spherical_distance(x, e)
    for i in range(5):
        for j in range(4):
            cos = torch.dot(x[i], e[j]) / (x[i].norm() * e[j].norm())
            angle = torch.arccos(cos.clamp(-1, 1))
            assert got[i, j].item() == pytest.approx(angle.item() ** 2 / 2, abs=1e-5)


def test_the_prompt_loss_equals_a_plain_loop_and_stops_pulling_below_its_stop():
    torch.manual_seed(1)
    features = torch.randn(2, 6, 8, requires_grad=True)  # (B, C, D)
    embeds, weights = torch.randn(2, 3, 8), torch.tensor([[1.0, 0.5, -1.0], [2.0, 0.0, 0.0]])
    stops = torch.full((2, 3), -INF)
    loss = prompt_loss(features, embeds, weights, stops)
    for b in range(2):
        want = 0.0
        for p in range(3):
            d = [2 * torch.arcsin((features[b, c] / features[b, c].norm() - embeds[b, p] / embeds[b, p].norm())
                                  .norm() / 2) ** 2 for c in range(6)]
            want += abs(weights[b, p].item()) * math.copysign(1, weights[b, p].item()) * torch.stack(d).mean().item()
        assert loss[b].item() == pytest.approx(want, abs=1e-5)
    # a stop above every distance: the loss keeps its value, the gradient is zero
    (grad_free,) = torch.autograd.grad(prompt_loss(features, embeds[:, :1], weights[:, :1], stops[:, :1]).sum(),
                                       features)
    high = torch.full((2, 1), 10.0)
    stopped = prompt_loss(features, embeds[:, :1], weights[:, :1], high)
    (grad_stopped,) = torch.autograd.grad(stopped.sum(), features)
    torch.testing.assert_close(stopped, prompt_loss(features, embeds[:, :1], weights[:, :1], stops[:, :1]))
    assert grad_free.abs().sum() > 0 and grad_stopped.abs().sum() == 0


def test_the_straight_through_quantiser_returns_codebook_entries_and_passes_gradients():
    torch.manual_seed(2)
    codebook = torch.randn(16, 4)
    z = torch.randn(2, 4, 3, 5, requires_grad=True)
    q = straight_through_quantize(z, codebook)
    for b in range(2):
        for i in range(3):
            for j in range(5):
                nearest = min(range(16), key=lambda k: (z[b, :, i, j] - codebook[k]).norm().item())
                torch.testing.assert_close(q[b, :, i, j], codebook[nearest])
    w = torch.randn_like(q)
    (grad,) = torch.autograd.grad((q * w).sum(), z)
    torch.testing.assert_close(grad, w)  # the identity's gradient


def test_the_clamp_keeps_only_gradients_that_lead_back_into_the_range():
    x = torch.tensor([-0.5, 0.5, 1.5, 1.5, -0.5], requires_grad=True)
    y = ClampWithGrad.apply(x, 0.0, 1.0)
    assert y.tolist() == [0.0, 0.5, 1.0, 1.0, 0.0]
    (grad,) = torch.autograd.grad(y, x, torch.tensor([-1.0, 1.0, 1.0, -1.0, 1.0]))
    # descent moves x by -grad: back up from -0.5 (grad -1), back down from 1.5 (grad +1); outward ones are dropped
    assert grad.tolist() == [-1.0, 1.0, 1.0, 0.0, 0.0]


def test_cutouts_depend_on_each_images_own_generator():
    torch.manual_seed(3)
    images = torch.rand(3, 3, 32, 32)
    cut = MakeCutouts(16, 4, cut_pow=1.0)
    batch = cut(images, [torch.Generator().manual_seed(s) for s in (7, 8, 9)])
    torch.manual_seed(4)  # the global generator's state changes nothing
    alone = cut(images[1:2], [torch.Generator().manual_seed(8)])
    assert batch.shape == (12, 3, 16, 16)
    torch.testing.assert_close(batch[4:8], alone)  # the same seed, whatever shares the batch
    assert not torch.allclose(batch[:4], batch[4:8])
    whole = MakeCutouts(32, 2, cut_pow=0.0, augment=None)(images, [torch.Generator().manual_seed(0)] * 3)
    torch.testing.assert_close(whole[0], images[0])  # cut_pow 0 without augmentations: the image itself


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_float32_stop_acts_at_the_distance_s_precision(dtype):
    # half-precision features, embeddings and weights give half-precision distances; a float32 stop a hair above
    # or below a distance rounds to that distance, and must act as the rounded stop (a tie: half the gradient),
    # not as the float32 value (no gradient above, the whole gradient below)
    g = torch.Generator().manual_seed(0)
    features, embeds = torch.randn(1, 3, 8, generator=g).to(dtype), torch.randn(1, 1, 8, generator=g).to(dtype)
    weights = torch.ones(1, 1, dtype=dtype)
    distance = spherical_distance(features, embeds)[0, 1, 0].float()  # cutout 1's distance, exact in float32

    def grad(stop):
        x = features.clone().requires_grad_(True)
        prompt_loss(x, embeds, weights, torch.tensor([[float(stop)]])).sum().backward()
        return x.grad

    tie = grad(distance)
    assert tie[0, 1].abs().sum() > 0 and torch.equal(tie[0, 0], grad(-INF)[0, 0])  # the tie passes half
    torch.testing.assert_close(2 * tie[0, 1], grad(-INF)[0, 1], rtol=1e-2, atol=1e-3)
    for towards in (INF, -INF):
        near = torch.nextafter(distance, torch.tensor(towards))
        assert near != distance and near.to(dtype) == distance.to(dtype)
        assert torch.equal(grad(near), tie)
