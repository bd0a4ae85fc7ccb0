"""The controller's unitless features against plain reference formulas."""

from __future__ import annotations

import math
import random

import pytest

from lit_digest.lr_control.features import cdf_feature, squashed_log


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
