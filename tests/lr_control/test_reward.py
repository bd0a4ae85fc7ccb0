"""The baseline curve and the log speedup on hand-computed answers: the first and last segments, a run that got
worse, equality at every boundary, the clip on both sides, and the power-law fit on short and flat curves."""

from __future__ import annotations

import math

import pytest

from lit_digest.lr_control.reward import BaselineCurve, log_speedup


def power_law(steps, a=2.0, b=0.5, c=0.1):
    return [c + a * (s / 10) ** -b for s in steps]


def test_steps_to_reach_in_the_first_and_last_segments_and_at_their_ends():
    steps = list(range(10, 170, 10))
    losses = power_law(steps)  # 2.1 at step 10 ... down to 0.6 at step 160
    curve = BaselineCurve(steps, losses, initial=2.5)
    # step 0 holds the initial loss 2.5: 2.3 lies half way to 2.1 at step 10, 2.48 a twentieth of the way
    assert curve.steps_to_reach(2.3) == pytest.approx(5)
    assert curve.steps_to_reach(2.48) == pytest.approx(0.5)
    assert curve.steps_to_reach((losses[-2] + losses[-1]) / 2) == pytest.approx(155)  # the last segment
    assert curve.steps_to_reach(losses[-1]) == pytest.approx(160)
    # the initial loss or worse, or no loss at all: no step of the baseline is needed
    assert curve.steps_to_reach(2.5) == 0.0
    assert curve.steps_to_reach(3.0) == 0.0
    assert curve.steps_to_reach(float("nan")) == 0.0
    assert curve.steps_to_reach(float("inf")) == 0.0


def test_log_speedup_below_one_baseline_step_and_clipped_below():
    steps = list(range(10, 170, 10))
    curve = BaselineCurve(steps, power_law(steps), initial=2.5)
    assert log_speedup(curve, 2.48, 1) == pytest.approx(math.log(0.5))  # half a baseline step in one step
    assert log_speedup(curve, 2.1, 1) == pytest.approx(math.log(10))  # 10 baseline steps in one
    assert log_speedup(curve, 2.1, 0) == pytest.approx(math.log(10))  # step 0 counts as one
    assert log_speedup(curve, 2.1, 1000) == -3  # log(10 / 1000) = -4.6, clipped


def test_a_baseline_that_got_worse_is_read_by_its_best_so_far():
    # the first evaluation is worse than the initial loss, and the run gets worse again after step 50
    steps = [10, 20, 30, 40, 50, 60, 70, 80]
    losses = [2.0, 1.5, 1.2, 1.0, 0.9, 0.95, 1.1, 1.3]
    curve = BaselineCurve(steps, losses, initial=1.0)
    # best so far: 2.0 at steps 0 and 10, 1.5 at 20: 1.8 lies 40% of the way from step 10 to 20
    assert curve.steps_to_reach(1.8) == pytest.approx(14)
    assert curve.steps_to_reach(1.2) == pytest.approx(30)  # a measured point
    assert curve.steps_to_reach(0.9) == pytest.approx(50)  # the best loss, first reached at step 50
    assert curve.steps_to_reach(1.9) == pytest.approx(12)


def test_the_power_law_extrapolates_short_curves_and_caps_what_it_cannot_fit():
    for n in (3, 5):  # 3 points fit the 3 parameters exactly; fewer than FIT_POINTS use them all
        steps = [10 * (k + 1) for k in range(n)]
        curve = BaselineCurve(steps, power_law(steps), initial=2.5)
        beyond = power_law([15 * n])[0]  # the law's loss at 1.5 times the run
        assert curve.steps_to_reach(beyond) == pytest.approx(15 * n, rel=1e-4)
    two = BaselineCurve([10, 20], power_law([10, 20]), initial=2.5)  # 2 points: no fit, the cap
    assert two.steps_to_reach(0.5) == 40 and two.steps_to_reach(1.4) == 40
    # a drop then a plateau: the fitted law (its exponent at the bound 5) levels off just below the plateau,
    # so a loss a little under it is reached within the run, which is the least extrapolation gives
    assert BaselineCurve([10, 20, 30], [2.0, 1.0, 1.0], initial=2.5).steps_to_reach(0.99) == 30
    flat = BaselineCurve([10, 20, 30, 40, 50], [1.0] * 5, initial=2.5)  # no progress to fit: the cap, however
    assert flat.steps_to_reach(1 - 1e-10) == 100 and flat.steps_to_reach(0.5) == 100  # close to the plateau
    # a run whose second evaluation is no better than its first is still fitted: the law's own answer
    steps = list(range(10, 150, 10))  # 14 points, all in the fit
    losses = power_law(steps)
    losses[1] = losses[0]
    stalled = BaselineCurve(steps, losses, initial=2.5)
    assert stalled.steps_to_reach(power_law([200])[0]) == pytest.approx(200, rel=0.1)  # not the cap, 280


def test_a_loss_at_the_fitted_asymptote_is_never_reached():
    steps = list(range(10, 170, 10))
    curve = BaselineCurve(steps, power_law(steps), initial=2.5)
    a, b, c = curve._fit
    assert c == pytest.approx(0.1, abs=1e-6) and b == pytest.approx(0.5, rel=1e-6)
    assert curve.steps_to_reach(c) == 320  # the asymptote itself: the cap, twice the run
    assert curve.steps_to_reach(c - 0.01) == 320



@pytest.mark.parametrize(("first", "count", "a", "b"), [(1, 8, 2.0, 4.0), (10, 20, 2.0, 1.0), (10, 14, 0.5, 4.0),
                                                       (10, 14, 2.0, 0.005)])
def test_the_fit_recovers_an_exact_power_law(first, count, a, b):
    # L(t) = a (t / first)^-b, no floor: the steps to reach the law's loss at 1.2 and 1.6 times the run. A slow
    # law (b = 0.005, a run that barely improves) takes the fit 541 evaluations: more than scipy's default 300
    steps = [first * (k + 1) for k in range(count)]
    curve = BaselineCurve(steps, [a * (t / first) ** -b for t in steps], initial=3.0)
    for t in (1.2 * steps[-1], 1.6 * steps[-1]):
        assert curve.steps_to_reach(a * (t / first) ** -b) == pytest.approx(t, rel=1e-3)


@pytest.mark.parametrize("scale", [1e-8, 1e-4, 1e4])
def test_the_steps_to_reach_a_loss_do_not_depend_on_the_losss_scale(scale):
    # a log speedup is unitless: losses 1e-8 times smaller (or 1e4 times larger) need the same baseline steps.
    # Before the fit was done in units of the window's own span, a curve at 1e-8 was never fitted (solver
    # tolerances are absolute; every answer was the cap) and one at 1e-4 was fitted 13% short
    steps = list(range(10, 170, 10))
    losses = power_law(steps)
    plain, scaled = BaselineCurve(steps, losses, 2.5), BaselineCurve(steps, [scale * x for x in losses], 2.5 * scale)
    for loss in (losses[-1] * 0.99, losses[-1] * 0.9, power_law([200])[0], power_law([300])[0]):
        assert scaled.steps_to_reach(scale * loss) == pytest.approx(plain.steps_to_reach(loss), rel=1e-6)
    # nor on a floor under it: a drop of 1e-4 on a loss of 5 (an entropy the data keeps) is fitted as well
    floored = BaselineCurve(steps, [5 + 1e-4 * x for x in losses], 5 + 2.5e-4)
    for loss in (losses[-1] * 0.9, power_law([200])[0], power_law([300])[0]):
        assert floored.steps_to_reach(5 + 1e-4 * loss) == pytest.approx(plain.steps_to_reach(loss), rel=1e-6)
    assert plain.steps_to_reach(power_law([200])[0]) == pytest.approx(200, rel=1e-6)  # the law's own answer


def test_a_run_that_improves_only_at_its_last_evaluation_is_fitted():
    # flat, then progress at the last point: the law extrapolates it, short of the cap (twice the run, 60)
    curve = BaselineCurve([10, 20, 30], [2.0, 2.0, 1.0], initial=2.5)
    assert 30 < curve.steps_to_reach(0.999) < curve.steps_to_reach(0.99) < 60


def test_the_fitted_floor_lies_between_zero_and_the_best_loss_seen():
    steps = list(range(10, 170, 10))
    # a fast drop to a plateau at 1.2 and a last point a little lower: the best fit's floor would sit just under
    # the plateau (1.1998), above 1.199; the law may not predict a floor the run has already beaten, so it holds
    # there
    dip = BaselineCurve(steps, [1.2 + 2.0 * (t / 10) ** -3 for t in steps[:-1]] + [1.199], initial=9.0)
    assert 1.19 < dip._fit[2] <= 1.199
    # an exponential decay to 0 drops faster than any power law: the best fit's floor would be below 0 (-0.005),
    # which no loss reaches
    decay = BaselineCurve(steps, [math.exp(-t / 40) for t in steps], initial=2.0)
    assert 0 <= decay._fit[2] < 1e-9
