"""The controller's unitless features against plain reference formulas."""

from __future__ import annotations

import math
import random

import pytest
import torch

from lit_digest.lr_control.features import FEATURE_NAMES, RunStatistics, cdf_feature, squashed_log


def naive_cdf(history, value, decay):
    """History oldest first: the newest entry has age 0 and weight 1, the one before it ``decay``, ... ."""
    n = len(history)
    weights = [decay ** (n - 1 - i) for i in range(n)]
    below = sum(w * (1.0 if h < value else 0.5 if h == value else 0.0) for w, h in zip(weights, history))
    return below / sum(weights)


@pytest.mark.parametrize("decay", [0.5, 0.8, 0.95])
def test_cdf_feature_weights_the_newest_history_most(decay):
    rng = random.Random(0)
    for _ in range(20):
        history = [rng.choice([rng.random(), 0.5]) for _ in range(rng.randint(1, 9))]
        value = rng.choice([rng.random(), 0.5])
        assert cdf_feature(history, value, decay) == pytest.approx(naive_cdf(history, value, decay))
    # an old history below the value and a recent one above it: the recent one dominates
    assert cdf_feature([0.0, 0.0, 1.0, 1.0], 0.5, 0.5) == pytest.approx((0.25 + 0.125) / (1 + 0.5 + 0.25 + 0.125))


def test_cdf_feature_bounds_and_missing_values():
    assert cdf_feature([], 1.0, 0.8) == 0.5
    assert cdf_feature([1.0, 2.0], math.nan, 0.8) == 0.5
    assert cdf_feature([1.0, 2.0], 0.5, 0.8) == 0.0  # the lowest so far
    assert cdf_feature([1.0, 2.0], 3.0, 0.8) == 1.0  # the highest so far
    assert cdf_feature([2.0], 2.0, 0.8) == 0.5  # a tie counts half


def test_squashed_log_is_tanh_of_the_centred_scaled_log10():
    for ratio, center, width in [(10.0, 0.0, 1.0), (0.02, -1.0, 2.0), (3.0, 0.5, 0.5)]:
        assert squashed_log(ratio, center, width) == pytest.approx(math.tanh((math.log10(ratio) - center) / width))
    assert squashed_log(0.0) == squashed_log(-1.0) == squashed_log(math.inf) == squashed_log(math.nan) == 0.0


def _flat(tensors):
    return torch.cat([t.detach().reshape(-1).double() for t in tensors])


def _cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def test_run_statistics_features_are_the_plain_formulas_of_the_steps_they_saw():
    """Two decision intervals of SGD with momentum on two parameters, every step sampled: each feature of the
    second observation against its formula on the recorded weights, gradients, momenta and losses."""
    torch.manual_seed(0)
    w, b = torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(3))
    frozen = torch.nn.Parameter(torch.randn(2), requires_grad=False)
    opt = torch.optim.SGD([w, b], lr=0.1, momentum=0.9)
    stats = RunStatistics()
    stats.attach([w, b, frozen])
    names = list(FEATURE_NAMES)
    record = []

    def interval(losses):
        steps = []
        for target in losses:
            opt.zero_grad()
            loss = ((w - target) ** 2).sum() + (b ** 2).sum() * target
            loss.backward()
            stats.add_loss(loss)
            state = [opt.state.get(p, {}).get("momentum_buffer") for p in (w, b)]
            momentum = None if state[0] is None else _flat(state)  # before the step updates it in place
            before = _flat([w, b])
            grad = _flat([w.grad, b.grad])
            stats.sample_before_step(opt)
            opt.step()
            stats.sample_after_step()
            steps.append({"loss": float(loss), "w": before, "g": grad, "u": _flat([w, b]) - before,
                          "m": momentum})
        record.append(steps)

    interval([0.5, 0.3, 0.2])
    first = stats.observe(0, 0.25, val_loss=2.0, val_fresh=True, scales={"lr": 1.0}, last_actions={})
    anchor0 = _flat([w, b])
    interval([0.1, 0.7])
    second = stats.observe(1, 0.5, val_loss=1.5, val_fresh=True, scales={"lr": 2.0, "momentum": 0.5},
                           last_actions={"lr": 6})
    v = dict(zip(names, second.vector.tolist()))
    steps = record[1]
    train1 = sum(s["loss"] for s in record[0]) / 3
    train2 = sum(s["loss"] for s in steps) / 2
    assert first.train_loss == pytest.approx(train1) and second.train_loss == pytest.approx(train2)
    assert v["progress"] == pytest.approx(0.5)
    assert v["train_loss_ratio"] == pytest.approx(math.tanh(math.log10(train2 / train1) / 0.5), abs=1e-6)
    assert v["train_loss_vs_start"] == pytest.approx(math.tanh(math.log10(train2 / train1)), abs=1e-6)
    for d in (0.5, 0.8, 0.95):
        assert v[f"train_loss_cdf_{d}"] == pytest.approx(naive_cdf([math.log(train1)], math.log(train2), d))
        assert v[f"val_loss_cdf_{d}"] == pytest.approx(0.0)  # 1.5 is below the earlier 2.0
    assert v["train_loss_nonfinite"] == 0.0 and v["val_fresh"] == 1.0
    assert v["val_loss_ratio"] == pytest.approx(math.tanh(math.log10(1.5 / 2.0) / 0.5), abs=1e-6)
    assert v["val_gap"] == pytest.approx(math.tanh(math.log10(1.5 / train2) / 0.5), abs=1e-6)
    update = sum(float(s["u"].norm() / s["w"].norm()) for s in steps) / 2
    assert v["update_to_weight"] == pytest.approx(math.tanh((math.log10(update) + 3) / 2), abs=1e-6)
    first_update = sum(float(s["u"].norm() / s["w"].norm()) for s in record[0]) / 3
    assert v["update_to_weight_cdf"] == pytest.approx(naive_cdf([math.log10(first_update)], math.log10(update), 0.8))
    assert v["cos_grad_weight"] == pytest.approx(sum(_cos(s["g"], s["w"]) for s in steps) / 2, abs=1e-6)
    assert v["cos_grad_momentum"] == pytest.approx(sum(_cos(s["g"], s["m"]) for s in steps) / 2, abs=1e-6)
    assert v["cos_grad_update"] == pytest.approx(sum(_cos(s["g"], s["u"]) for s in steps) / 2, abs=1e-6)
    now = _flat([w, b])
    assert v["interval_update_to_weight"] == pytest.approx(
        math.tanh((math.log10(float((now - anchor0).norm() / anchor0.norm())) + 2) / 2), abs=1e-6)
    assert v["interval_weight_norm_ratio"] == pytest.approx(
        math.tanh(10 * math.log(float(now.norm() / anchor0.norm()))), abs=1e-5)
    assert v["lr_scale"] == pytest.approx(math.log(2.0) / math.log(1e3))
    assert v["momentum_scale"] == pytest.approx(math.log(0.5) / math.log(1e2)) and v["weight_decay_scale"] == 0.0
    assert [v[f"last_lr_action_{i}"] for i in range(7)] == [0, 0, 0, 0, 0, 0, 1.0]
    assert [v[f"last_momentum_action_{i}"] for i in range(3)] == [0, 1.0, 0]  # no change
    # the first observation: nothing to compare with yet
    f = dict(zip(names, first.vector.tolist()))
    assert f["train_loss_ratio"] == f["val_loss_ratio"] == f["interval_update_to_weight"] == 0.0
    assert f["train_loss_cdf_0.8"] == f["val_loss_cdf_0.8"] == 0.5 and f["cos_grad_momentum"] != 0.0
    assert second.val_loss == 1.5 and second.decision == 1
    stale = stats.observe(2, 0.75, val_loss=1.0, val_fresh=False, scales={}, last_actions={})
    s = dict(zip(names, stale.vector.tolist()))
    assert s["val_fresh"] == 0.0 and s["val_gap"] == 0.0 and s["val_loss_cdf_0.5"] == 0.5
    assert stale.val_loss == 1.5 and stale.train_loss != stale.train_loss  # no step: NaN, its flag set
    assert s["train_loss_nonfinite"] == 1.0
    restored = RunStatistics()
    restored.load_state_dict(stats.state_dict())
    assert restored.train_losses[:2] == stats.train_losses[:2] and restored.val_losses == [2.0, 1.5]
