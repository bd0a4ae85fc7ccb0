"""The controller's features at the edges a run reaches: losses of exactly 0 or below (an accuracy of 1 seen as the
error 0), zero and small norms, steps without a momentum or an update, parameters without a gradient, Adam's
momentum, a weight norm that shrinks, vanishes or overflows float32, and the Observation's fields; each against a
plain formula written here (make mutate on lr_control/features.py)."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.lr_control.features import FEATURE_NAMES, RunStatistics, squashed_log


def _features(obs) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, obs.vector.tolist()))


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(a @ b / (a.norm() * b.norm()))


def _step(stats: RunStatistics, opt, w: torch.nn.Parameter, grad: list[float], delta: list[float]) -> None:
    """One sampled step whose gradient and update we choose: the statistics see ``grad``, the weights move by
    ``delta``."""
    w.grad = torch.tensor(grad)
    stats.sample_before_step(opt)
    with torch.no_grad():
        w.add_(torch.tensor(delta))
    stats.sample_after_step()


def _observe(stats: RunStatistics, decision: int, loss: float | None = 1.0, **kwargs):
    if loss is not None:
        stats.add_loss(torch.tensor(loss))
    kwargs = {"val_loss": None, "val_fresh": False, "scales": {}, "last_actions": {}, **kwargs}
    return stats.observe(decision, 0.1 * (decision + 1), **kwargs)


def test_squashed_log_defaults_to_no_centre_and_unit_width():
    assert squashed_log(100.0) == pytest.approx(math.tanh(2.0))
    assert squashed_log(0.1) == pytest.approx(math.tanh(-1.0))


def test_losses_of_zero_and_below_give_finite_features_without_their_logs():
    """A training loss can reach 0 or go negative, a validation error is 0 at an accuracy of 1: no log, no ratio
    (0, or 0.5 for a CDF), and they stay out of the CDFs' histories; before, observe divided by zero or took the
    log of 0."""
    stats = RunStatistics()  # no parameters attached: losses only
    first = _features(_observe(stats, 0, 0.0, val_loss=0.0, val_fresh=True))
    assert first["train_loss_cdf_0.8"] == 0.5 and first["val_loss_cdf_0.8"] == 0.5 and first["val_gap"] == 0.0
    second = _features(_observe(stats, 1, 0.5, val_loss=0.3, val_fresh=True))
    assert second["train_loss_ratio"] == 0.0 and second["train_loss_vs_start"] == 0.0  # after a loss of 0
    assert second["val_loss_ratio"] == 0.0 and second["val_gap"] == pytest.approx(
        math.tanh(math.log10(0.3 / 0.5) / 0.5), abs=1e-6)
    assert second["train_loss_cdf_0.8"] == 0.5 and second["val_loss_cdf_0.8"] == 0.5  # the 0s are no history
    third = _features(_observe(stats, 2, -1.0, val_loss=-0.5, val_fresh=True))
    assert third["train_loss_cdf_0.5"] == 0.5 and third["val_loss_cdf_0.5"] == 0.5
    assert third["train_loss_ratio"] == 0.0 and third["train_loss_nonfinite"] == 0.0
    fourth = _features(_observe(stats, 3, 2.0, val_loss=0.2, val_fresh=True))
    assert fourth["train_loss_cdf_0.8"] == 1.0  # above the only positive history entry, 0.5
    assert fourth["val_loss_cdf_0.8"] == 0.0  # below the only positive one, 0.3
    assert fourth["train_loss_ratio"] == 0.0  # 2 / -1: no log
    assert fourth["train_loss_vs_start"] == 0.0  # the start was 0
    assert stats.train_losses == [0.0, 0.5, -1.0, 2.0] and stats.val_losses == [0.0, 0.3, -0.5, 0.2]


def test_observation_fields_the_first_observation_and_a_one_step_interval():
    stats = RunStatistics()
    first = _observe(stats, 0, 0.75)  # one loss: its mean is itself
    f = _features(first)
    assert first.train_loss == 0.75 and first.progress == pytest.approx(0.1) and first.decision == 0
    assert first.val_loss is None and first.val_fresh is False
    assert f["train_loss_vs_start"] == 0.0 and f["interval_weight_norm_ratio"] == 0.0
    assert f["cos_grad_weight"] == f["cos_grad_momentum"] == f["cos_grad_update"] == 0.0  # no sampled step
    for k, val in enumerate([3.0, 2.0, 1.0]):
        fresh = _observe(stats, k + 1, val_loss=val, val_fresh=True)
        assert fresh.val_fresh is True and fresh.val_loss == val
    stale = _observe(stats, 4, val_loss=9.0, val_fresh=False)
    assert stale.val_fresh is False and stale.val_loss == 1.0  # the newest of three
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert _observe(stats, 5).vector.dtype == torch.float32
    finally:
        torch.set_default_dtype(previous)


def test_zero_and_small_norms_give_plain_cosines_and_ratios():
    w = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([w], lr=1.0)
    stats = RunStatistics()
    stats.attach([w])
    _step(stats, opt, w, [0.3, 0.0, 0.4], [0.1, 0.2, 0.0])  # from zero weights: no cosine, no ratio
    f = _features(_observe(stats, 0))
    assert f["cos_grad_weight"] == 0.0 and f["cos_grad_update"] == 0.0
    assert f["update_to_weight"] == 0.0 and f["update_to_weight_cdf"] == 0.5
    anchor = w.detach().clone()  # norm^2 0.05
    _step(stats, opt, w, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])  # a zero gradient and no update
    before = w.detach().clone()
    g, d = torch.tensor([0.0, 0.3, 0.1]), torch.tensor([0.05, -0.05, 0.02])  # norms below 1
    _step(stats, opt, w, g.tolist(), d.tolist())
    v = _features(_observe(stats, 1))
    assert v["cos_grad_weight"] == pytest.approx((0.0 + _cos(g, before)) / 2, abs=1e-6)
    assert v["cos_grad_update"] == pytest.approx(_cos(g, d), abs=1e-6)  # the still step has no update
    ratio = float(d.norm() / before.norm())
    assert v["update_to_weight"] == pytest.approx(math.tanh((math.log10(ratio) + 3) / 2), abs=1e-6)
    moved = float((w.detach() - anchor).norm() / anchor.norm())
    assert v["interval_update_to_weight"] == pytest.approx(math.tanh((math.log10(moved) + 2) / 2), abs=1e-6)
    grown = float(w.detach().norm() / anchor.norm())
    assert v["interval_weight_norm_ratio"] == pytest.approx(math.tanh(10 * math.log(grown)), abs=1e-5)


def test_interval_norm_ratio_when_the_weights_shrink_vanish_or_start_at_zero():
    w = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
    stats = RunStatistics()
    stats.attach([w])
    _observe(stats, 0)
    with torch.no_grad():
        w.mul_(0.98)
    v = _features(_observe(stats, 1))
    assert v["interval_weight_norm_ratio"] == pytest.approx(math.tanh(10 * math.log(0.98)), abs=1e-5)
    assert v["interval_update_to_weight"] == pytest.approx(math.tanh((math.log10(0.02) + 2) / 2), abs=1e-5)
    with torch.no_grad():
        w.zero_()
    v = _features(_observe(stats, 2))  # every weight 0: no log of the norm ratio
    assert v["interval_weight_norm_ratio"] == 0.0
    assert v["interval_update_to_weight"] == pytest.approx(math.tanh((0.0 + 2) / 2), abs=1e-6)
    with torch.no_grad():
        w.fill_(1.0)
    v = _features(_observe(stats, 3))  # the anchor was all zeros: no ratio to it
    assert v["interval_weight_norm_ratio"] == 0.0 and v["interval_update_to_weight"] == 0.0


def test_momentum_cosine_counts_steps_with_a_momentum_and_skips_parameters_without_a_gradient():
    torch.manual_seed(0)
    unused = torch.nn.Parameter(torch.randn(2))  # attached first, never given a gradient
    w = torch.nn.Parameter(torch.randn(4))
    opt = torch.optim.SGD([unused, w], lr=0.1, momentum=0.9)
    stats = RunStatistics()
    stats.attach([unused, w])
    cosines, momentum_cosines = [], []
    for target in (0.5, -0.5):
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        buffer = opt.state.get(w, {}).get("momentum_buffer")  # none before the first step
        cosines.append(_cos(w.grad, w.detach()))
        if buffer is not None:
            momentum_cosines.append(_cos(w.grad, buffer))
        stats.sample_before_step(opt)
        opt.step()
        stats.sample_after_step()
    v = _features(_observe(stats, 0))
    assert len(momentum_cosines) == 1
    assert v["cos_grad_weight"] == pytest.approx(sum(cosines) / 2, abs=1e-6)
    assert v["cos_grad_momentum"] == pytest.approx(momentum_cosines[0], abs=1e-6)


def test_adams_first_moment_is_the_momentum():
    torch.manual_seed(1)
    w = torch.nn.Parameter(torch.randn(5))
    opt = torch.optim.Adam([w], lr=0.05)
    stats = RunStatistics()
    stats.attach([w])
    for target in (1.0, -1.0):
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        first_moment = opt.state.get(w, {}).get("exp_avg")
        expected = None if first_moment is None else _cos(w.grad, first_moment)
        stats.sample_before_step(opt)
        opt.step()
        stats.sample_after_step()
    v = _features(_observe(stats, 0))
    assert expected is not None and abs(expected) > 0.1
    assert v["cos_grad_momentum"] == pytest.approx(expected, abs=1e-6)


def test_update_cdf_weighs_the_newest_ratios_most_and_the_histories_survive_a_reload():
    w = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    opt = torch.optim.SGD([w], lr=1.0)
    stats = RunStatistics()
    stats.attach([w])
    stats.load_state_dict({"train_losses": [], "val_losses": [], "update_ratios": [-1.0, -3.0]})  # log10 ratios
    _step(stats, opt, w, [1.0, 0.0], [0.0, 0.01])  # ratio 0.01: above the newest (-3), below the older (-1)
    v = _features(_observe(stats, 0))
    assert v["update_to_weight_cdf"] == pytest.approx(1 / (1 + 0.8), abs=1e-6)
    assert stats.update_ratios == pytest.approx([-1.0, -3.0, -2.0])
    restored = RunStatistics()
    restored.load_state_dict(stats.state_dict())
    assert restored.update_ratios == stats.update_ratios and restored.train_losses == [1.0]


def test_a_weight_norm_that_overflows_float32_gives_finite_features():
    """A diverged run: ||w||^2 is inf in float32, so the update-to-weight ratio is 0, which has no log."""
    w = torch.nn.Parameter(torch.tensor([1e20, 1e20]))
    opt = torch.optim.SGD([w], lr=1.0)
    stats = RunStatistics()
    stats.attach([w])
    _step(stats, opt, w, [1.0, 0.0], [1e18, 0.0])
    obs = _observe(stats, 0)
    v = _features(obs)
    assert torch.isfinite(obs.vector).all()
    assert v["update_to_weight"] == 0.0 and v["update_to_weight_cdf"] == 0.5 and stats.update_ratios == []
