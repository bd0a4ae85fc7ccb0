import math

import pytest
import torch

from lit_digest.nn import cosine_tau
from lit_digest.optim import LARS, build_optimizer, scaled_lr, split_decay_groups, warmup_cosine


def naive_lars_step(w, g, buf, lr, momentum, wd, eta, clip, exclude, eps=1e-8):
    """Reference from the formulas (You et al. 1708.03888, eq. 6; NVIDIA LARC clipping)."""
    if exclude:
        update = g + wd * w
    else:
        wn, gn = math.sqrt(float((w * w).sum())), math.sqrt(float((g * g).sum()))
        ratio = eta * wn / (gn + wd * wn + eps) if wn > 0 and gn > 0 else 1.0
        if clip:
            ratio = min(ratio / lr, 1.0)
        update = (g + wd * w) * ratio
    buf = update.clone() if buf is None else momentum * buf + update
    return w - lr * buf, buf


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("lr", [0.05, 2.0])
def test_lars_matches_naive_reference_over_several_steps(clip, lr):
    torch.manual_seed(0)
    weight = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    opt = LARS([{"params": [weight]}, {"params": [bias], "weight_decay": 0.0, "lars_exclude": True}],
               lr=lr, momentum=0.9, weight_decay=1e-4, eta=0.02, clip_lr=clip)
    ref_w, ref_b, buf_w, buf_b = weight.detach().clone(), bias.detach().clone(), None, None
    for _ in range(4):
        grads_w, grads_b = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
        weight.grad, bias.grad = grads_w.clone(), grads_b.clone()
        opt.step()
        ref_w, buf_w = naive_lars_step(ref_w, grads_w, buf_w, lr, 0.9, 1e-4, 0.02, clip, exclude=False)
        ref_b, buf_b = naive_lars_step(ref_b, grads_b, buf_b, lr, 0.9, 0.0, 0.02, clip, exclude=True)
        torch.testing.assert_close(weight.detach(), ref_w)
        torch.testing.assert_close(bias.detach(), ref_b)


def test_lars_trust_ratio_scales_step_by_weight_to_gradient_norm():
    w = torch.full((10,), 2.0, requires_grad=True)  # ||w|| = 2 sqrt(10)
    w.grad = torch.full((10,), 0.5)  # ||g|| = 0.5 sqrt(10)
    LARS([w], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.1, clip_lr=False).step()
    # ratio = 0.1 * 4 = 0.4, so w = 2 - 0.4 * 0.5
    torch.testing.assert_close(w.detach(), torch.full((10,), 1.8))


def test_decay_groups_exclude_bias_and_norm():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    decay, no_decay = split_decay_groups([net])
    assert {p.ndim for p in decay["params"]} == {2}
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0 and no_decay["lars_exclude"]
    opt = build_optimizer("sgd", [decay, no_decay], lr=0.1, weight_decay=1e-4)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]


def test_warmup_cosine_values_at_chosen_steps():
    kw = dict(total_steps=1100, warmup_steps=100, base_lr=2.0)
    assert warmup_cosine(0, **kw) == 0.0
    assert warmup_cosine(50, **kw) == pytest.approx(1.0)  # half-way through the warmup
    assert warmup_cosine(100, **kw) == pytest.approx(2.0)  # peak
    assert warmup_cosine(600, **kw) == pytest.approx(1.0)  # half-way through the cosine
    assert warmup_cosine(1100, **kw) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(350, **kw) == pytest.approx(1.0 + math.cos(math.pi / 4))


def test_cosine_tau_schedule():
    assert cosine_tau(0, 1000, 0.99, 1.0) == pytest.approx(0.99)
    assert cosine_tau(500, 1000, 0.99, 1.0) == pytest.approx(0.995)
    assert cosine_tau(1000, 1000, 0.99, 1.0) == pytest.approx(1.0)
    assert cosine_tau(250, 1000, 0.996, 1.0) == pytest.approx(1 - 0.004 * (math.cos(math.pi / 4) + 1) / 2)


def test_linear_lr_scaling_rule():
    assert scaled_lr(1.0, 256) == 1.0
    assert scaled_lr(0.2, 4096) == pytest.approx(3.2)  # BYOL's ImageNet setting
