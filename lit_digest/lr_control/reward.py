"""The meta-training reward: how much faster than a baseline run the controlled run reaches its loss.

The authors' config (``example_config.jsonnet`` of github.com/openai/LHOPT) sets the reward to the
``adam_baseline_eval_loss`` mode with ``power_curve_fit`` (14 points, extrapolation 2.0), taken as a log and clipped
at 3. We read it as: fit the baseline Adam run's validation-loss curve, find the number of steps the baseline needs
to reach the controlled run's validation loss, and reward ``log(baseline steps / controlled steps)``, the log
speedup, clipped to ``[-3, 3]``; beyond the baseline's last step the curve is extrapolated with a power law
``L(t) = c + a t^-b`` fitted to its last 14 points, at most to twice its length. A log speedup is unitless and
comparable across tasks of any loss scale or length, which a raw final loss is not.

Per-decision rewards telescope: decision ``k`` gets ``s_k - s_{k-1}``, where ``s_k`` is the log speedup measured at
the end of its interval (``s_{-1} = 0``), so an episode's return is its final log speedup (the issue's "reward from
final performance") while each decision also sees the effect of its own interval (potential-based shaping, which
leaves the optimal policy unchanged).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BaselineCurve", "log_speedup", "shaped_rewards"]

CLIP = 3.0
FIT_POINTS = 14
EXTRAPOLATION = 2.0


@dataclass
class BaselineCurve:
    """A baseline run's validation losses ``losses`` at optimisation ``steps``, and the loss ``initial`` at step 0."""

    steps: Sequence[int]
    losses: Sequence[float]
    initial: float

    def __post_init__(self) -> None:
        envelope = np.minimum.accumulate(np.asarray(self.losses, dtype=float))  # best so far
        self._t = np.concatenate([[0.0], np.asarray(self.steps, dtype=float)])
        self._L = np.concatenate([[max(self.initial, envelope[0])], envelope])
        self.total = float(self._t[-1])
        self._fit = self._power_fit()

    def _power_fit(self) -> tuple[float, float, float] | None:
        t, L = self._t[1:][-FIT_POINTS:], self._L[1:][-FIT_POINTS:]
        if len(t) < 3 or not np.all(np.isfinite(L)) or L[0] <= L[-1]:
            return None
        from scipy.optimize import curve_fit

        # fitted in the window's own units (steps / its last step, the loss's drop from its last value / the whole
        # drop, so y runs from 1 to 0): the start and the solver's tolerances then fit a law of any loss scale alike
        T, D = t[-1], L[0] - L[-1]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a bad fit falls back below; nothing to tell the user
                (a, b, c), _ = curve_fit(lambda x, a, b, c: c + a * x ** (-b), t / T, (L - L[-1]) / D,
                                         p0=(1.0, 0.5, 0.0), bounds=([0, 1e-3, -L[-1] / D], [np.inf, 5, 0]),
                                         maxfev=2000)  # a slow law (b = 0.005) needs 541; the default, 300
        except (RuntimeError, ValueError):
            return None
        return float(a * D * T**b), float(b), float(L[-1] + D * c)  # L = L[-1] + D (c + a (t / T)^-b)

    def steps_to_reach(self, loss: float) -> float:
        """Steps the baseline needs to reach ``loss``: interpolated along its best-so-far curve, extrapolated past
        its end by the power law (at most ``EXTRAPOLATION`` times its length)."""
        if not math.isfinite(loss):
            return 0.0
        if loss >= self._L[0]:
            return 0.0
        if loss >= self._L[-1]:
            i = int(np.argmax(self._L <= loss))  # first point at or below: i >= 1 and L0 > loss >= L1
            L0, L1, t0, t1 = self._L[i - 1], self._L[i], self._t[i - 1], self._t[i]
            return float(t0 + (t1 - t0) * (L0 - loss) / (L0 - L1))
        cap = EXTRAPOLATION * self.total
        if self._fit is None:
            return cap
        a, b, c = self._fit
        if loss <= c:
            return cap
        return float(min(max((a / (loss - c)) ** (1 / b), self.total), cap))


def log_speedup(curve: BaselineCurve, loss: float, step: int) -> float:
    """``log(baseline steps to reach loss / step)``, clipped to ``[-3, 3]``; -3 for a non-finite loss."""
    if not math.isfinite(loss):
        return -CLIP
    reach = curve.steps_to_reach(loss)
    if reach <= 0:
        return -CLIP
    return float(np.clip(math.log(reach / max(step, 1)), -CLIP, CLIP))


def shaped_rewards(speedups: Sequence[float]) -> list[float]:
    """``s_k - s_{k-1}`` with ``s_{-1} = 0``: they sum to the final log speedup."""
    return [s - (speedups[k - 1] if k else 0.0) for k, s in enumerate(speedups)]
