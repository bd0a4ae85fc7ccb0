"""BYOL's moving average: the cosine decay rate at its ends and defaults, the update against the formula written
out, and the frozen copy (``make mutate`` on ``lit_digest/core/ema.py``)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lit_digest.core.ema import copy_frozen, cosine_tau, update_ema


def test_cosine_tau_defaults_ends_and_clamping():
    assert cosine_tau(0, 100) == pytest.approx(0.99)  # solo-learn's CIFAR setting: 0.99 -> 1.0
    assert cosine_tau(100, 100) == 1.0
    assert cosine_tau(25, 100) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)
    assert cosine_tau(-5, 100, 0.9, 0.95) == pytest.approx(0.9)  # before the start: the base
    assert cosine_tau(150, 100, 0.9, 0.95) == pytest.approx(0.95)  # past the end: the final rate
    assert cosine_tau(3, 0, 0.9, 0.95) == 0.95 and cosine_tau(3, -1, 0.9, 0.95) == 0.95  # no steps: the final rate
    assert cosine_tau(0, 1, 0.9, 0.95) == pytest.approx(0.9) and cosine_tau(1, 1, 0.9, 0.95) == pytest.approx(0.95)


def test_update_ema_is_the_formula_on_every_parameter_and_leaves_buffers():
    g = torch.Generator().manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    target = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    for p in [*online.parameters(), *target.parameters()]:
        p.data = torch.randn(p.shape, generator=g)
    target[1].running_mean.fill_(7.0)
    before = [p.detach().clone() for p in target.parameters()]
    update_ema(online, target, 0.75)
    for new, old, o in zip(target.parameters(), before, online.parameters(), strict=True):
        torch.testing.assert_close(new.detach(), 0.75 * old + 0.25 * o.detach())
    assert torch.equal(target[1].running_mean, torch.full((2,), 7.0))  # buffers keep their own statistics
    with pytest.raises(ValueError, match="^online and target networks have different parameter lists$"):
        update_ema(online, nn.Linear(3, 2), 0.5)


def test_copy_frozen_is_an_independent_copy_without_gradients():
    net = nn.Linear(3, 2)
    twin = copy_frozen(net)
    assert all(not p.requires_grad for p in twin.parameters())
    assert all(p.requires_grad for p in net.parameters())
    torch.testing.assert_close(twin.weight, net.weight)
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not torch.equal(twin.weight, net.weight)
