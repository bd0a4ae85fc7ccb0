"""What the controller sees: unitless statistics of a training run (Almeida et al., arXiv 2106.00958, Sec. 3).

The paper's argument for generalisation is that the policy never sees a quantity with units: no raw loss, no raw
learning rate, no raw norm. Every feature here is a ratio, a log-ratio squashed by ``tanh``, a cosine, a fraction
of the run, or a "CDF feature": where the current value falls among the run's own earlier values. The list
follows the authors' example config (``example_config.jsonnet`` of github.com/openai/LHOPT: ``progress``,
``loss_ratio``, ``log_loss`` CDFs of the training and evaluation loss, ``log_adam_update_norm_over_param_norm``,
``cosine_similarity_grad_momentum``/``_grad_param``/``_grad_update``, ``outer_update_ratio``,
``outer_norm_ratio``, the previous action and each hyperparameter relative to its start), with three changes:

* the CDF features are time-weighted ranks of the current value among the run's earlier decision-point values
  (weights ``decay ** age`` at three decays), our reading of the config's ``integral_cdf`` transforms, whose
  definition the sources we could read do not give;
* the gradient norm enters only through cosines: ``||g|| / ||w||`` has the loss's units (scale the loss by
  1000 and it moves), unlike Adam's update-to-weight ratio, which the paper uses;
* the gradient noise scale, Adam's ``sqrt(v) > eps`` fraction and the did-clip flag are left out: they need
  per-example gradients or the inner optimiser's internals, and the callback must work with any optimiser;
* the validation gap ``log(val / train)`` is added (the issue asks for validation gaps; the paper's policy sees
  both losses through their CDFs).

Statistics are gathered at every step for the loss (on the device, one sync per decision) and at a few sampled
steps per interval for norms and cosines, so the cost is a few passes over the weights per interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lit_digest.lr_control.actions import ACTION_SCALES, HYPERPARAMETERS, NO_CHANGE, log_scale_feature

__all__ = ["Observation", "RunStatistics", "cdf_feature", "squashed_log", "FEATURE_NAMES", "NUM_FEATURES"]

CDF_DECAYS = (0.5, 0.8, 0.95)
_BASE_FEATURES = (
    "progress", "train_loss_ratio", "train_loss_vs_start", *[f"train_loss_cdf_{d}" for d in CDF_DECAYS],
    "train_loss_nonfinite", "val_fresh", "val_loss_ratio", "val_gap", *[f"val_loss_cdf_{d}" for d in CDF_DECAYS],
    "update_to_weight", "update_to_weight_cdf", "cos_grad_weight",
    "cos_grad_momentum", "cos_grad_update", "interval_update_to_weight", "interval_weight_norm_ratio",
)
FEATURE_NAMES: tuple[str, ...] = (
    *_BASE_FEATURES, *[f"{name}_scale" for name in HYPERPARAMETERS],
    *[f"last_{name}_action_{i}" for name in HYPERPARAMETERS for i in range(len(ACTION_SCALES[name]))],
)
NUM_FEATURES = len(FEATURE_NAMES)


def squashed_log(ratio: float, center: float = 0.0, width: float = 1.0) -> float:
    """``tanh((log10(ratio) - center) / width)``, 0 for a missing or non-finite ratio."""
    if not ratio > 0 or not math.isfinite(ratio):
        return 0.0
    return math.tanh((math.log10(ratio) - center) / width)


def cdf_feature(history: Sequence[float], value: float, decay: float) -> float:
    """Time-weighted fraction of ``history`` below ``value`` (ties count half), weights ``decay ** age``: 0 when
    ``value`` is the run's lowest so far, 1 when its highest, 0.5 without history."""
    if not history or not math.isfinite(value):
        return 0.5
    total = below = 0.0
    for age, past in enumerate(reversed(history)):
        weight = decay**age
        total += weight
        below += weight * (1.0 if past < value else 0.5 if past == value else 0.0)
    return below / total


def _ratio(a: float, b: float) -> float:
    """``a / b``, NaN where ``b`` is 0 (a loss that reached exactly 0), which ``squashed_log`` reads as missing."""
    return a / b if b != 0 else math.nan


def _cos(dot: float, norm_a: float, norm_b: float) -> float:
    return dot / (norm_a * norm_b) if norm_a > 0 and norm_b > 0 else 0.0


@dataclass
class Observation:
    """One decision's input: ``vector`` (``NUM_FEATURES``,) for a learned policy, and the raw numbers a heuristic
    may use."""

    vector: torch.Tensor
    decision: int
    progress: float
    train_loss: float
    val_loss: float | None
    val_fresh: bool


class RunStatistics:
    """Accumulates one interval's statistics from the callback's hooks; ``observe`` closes the interval."""

    def __init__(self) -> None:
        self.train_losses: list[float] = []  # interval means, one per decision
        self.val_losses: list[float] = []  # fresh validation losses seen at decisions
        self.update_ratios: list[float] = []
        self.params: list[torch.Tensor] = []
        self._anchor: list[torch.Tensor] | None = None  # weights at the last decision
        self._before: list[torch.Tensor] | None = None  # weights before a sampled step
        self._reset_interval()

    def _reset_interval(self) -> None:
        self._loss_sum: torch.Tensor | float = 0.0
        self._loss_count = 0
        self._sampled: dict[str, list[float]] = {k: [] for k in ("update", "cgw", "cgm", "cgu")}

    def state_dict(self) -> dict:
        return {"train_losses": self.train_losses, "val_losses": self.val_losses, "update_ratios": self.update_ratios}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, list(value))

    def attach(self, params: Sequence[torch.Tensor]) -> None:
        self.params = [p for p in params if p.requires_grad]

    # -- hooks ------------------------------------------------------------------------------------
    def add_loss(self, loss: torch.Tensor) -> None:
        self._loss_sum = self._loss_sum + loss.detach().float()
        self._loss_count += 1

    @torch.no_grad()
    def sample_before_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradient statistics of this step, and a copy of the weights to measure its update."""
        w2 = g2 = gw = gm = m2 = 0.0
        has_momentum = False
        for p in self.params:
            if p.grad is None:
                continue
            g, w = p.grad.float(), p.float()
            w2 += float(w.pow(2).sum())
            g2 += float(g.pow(2).sum())
            gw += float((g * w).sum())
            state = optimizer.state.get(p, {})
            m = state.get("exp_avg", state.get("momentum_buffer"))
            if isinstance(m, torch.Tensor) and m.shape == g.shape:
                has_momentum = True
                gm += float((g * m.float()).sum())
                m2 += float(m.float().pow(2).sum())
        w_norm, g_norm = math.sqrt(w2), math.sqrt(g2)
        self._sampled["cgw"].append(_cos(gw, g_norm, w_norm))
        if has_momentum:
            self._sampled["cgm"].append(_cos(gm, g_norm, math.sqrt(m2)))
        self._before = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def sample_after_step(self) -> None:
        if self._before is None:
            return
        u2 = w2 = gu = g2 = 0.0
        for p, old in zip(self.params, self._before):
            u = (p - old).float()
            u2 += float(u.pow(2).sum())
            w2 += float(old.float().pow(2).sum())
            if p.grad is not None:
                gu += float((p.grad.float() * u).sum())
                g2 += float(p.grad.float().pow(2).sum())
        self._before = None
        if u2 > 0 and w2 > 0:
            self._sampled["update"].append(math.sqrt(u2 / w2))
            self._sampled["cgu"].append(_cos(gu, math.sqrt(g2), math.sqrt(u2)))

    # -- the decision's observation ---------------------------------------------------------------
    @torch.no_grad()
    def _interval_weights(self) -> tuple[float, float]:
        """``||w - w_anchor|| / ||w_anchor||`` and ``||w|| / ||w_anchor||`` since the last decision."""
        current = [p.detach().clone() for p in self.params]
        anchor, self._anchor = self._anchor, current
        if anchor is None:
            return float("nan"), float("nan")
        d2 = sum(float((c - a).float().pow(2).sum()) for c, a in zip(current, anchor))
        a2 = sum(float(a.float().pow(2).sum()) for a in anchor)
        c2 = sum(float(c.float().pow(2).sum()) for c in current)
        return (math.sqrt(d2 / a2), math.sqrt(c2 / a2)) if a2 > 0 else (float("nan"), float("nan"))

    def observe(self, decision: int, progress: float, val_loss: float | None, val_fresh: bool,
                scales: dict[str, float], last_actions: dict[str, int]) -> Observation:
        count = max(self._loss_count, 1)
        train = float(self._loss_sum / count) if self._loss_count else float("nan")
        previous_train = self.train_losses[-1] if self.train_losses else float("nan")
        start_train = self.train_losses[0] if self.train_losses else float("nan")
        log_train = math.log(train) if train > 0 and math.isfinite(train) else float("nan")
        hist_train = [math.log(x) for x in self.train_losses if x > 0 and math.isfinite(x)]

        fresh = bool(val_fresh and val_loss is not None and math.isfinite(val_loss))
        previous_val = self.val_losses[-1] if self.val_losses else float("nan")
        val = val_loss if fresh else float("nan")
        log_val = math.log(val) if val > 0 else float("nan")  # a loss (or 1 - accuracy) of 0: no log
        hist_val = [math.log(x) for x in self.val_losses if x > 0]

        def mean(key: str) -> float:
            values = self._sampled[key]
            return sum(values) / len(values) if values else float("nan")

        update = mean("update")
        log_update = math.log10(update) if update > 0 else float("nan")
        interval_update, norm_ratio = self._interval_weights()

        def zero_nan(x: float) -> float:
            return x if math.isfinite(x) else 0.0

        values = [
            progress,
            squashed_log(_ratio(train, previous_train), width=0.5) if self.train_losses else 0.0,
            squashed_log(_ratio(train, start_train), width=1.0) if self.train_losses else 0.0,
            *[cdf_feature(hist_train, log_train, d) for d in CDF_DECAYS],
            0.0 if math.isfinite(train) else 1.0,
            1.0 if fresh else 0.0,
            squashed_log(_ratio(val, previous_val), width=0.5) if fresh and self.val_losses else 0.0,
            squashed_log(_ratio(val, train), width=0.5) if fresh else 0.0,
            *[cdf_feature(hist_val, log_val, d) for d in CDF_DECAYS],
            squashed_log(update, center=-3.0, width=2.0),
            cdf_feature(self.update_ratios, log_update, 0.8),
            zero_nan(mean("cgw")), zero_nan(mean("cgm")), zero_nan(mean("cgu")),
            squashed_log(interval_update, center=-2.0, width=2.0),
            math.tanh(10 * math.log(norm_ratio)) if norm_ratio > 0 and math.isfinite(norm_ratio) else 0.0,
            *[log_scale_feature(name, scales.get(name, 1.0)) for name in HYPERPARAMETERS],
        ]
        for name in HYPERPARAMETERS:
            chosen = last_actions.get(name, NO_CHANGE[name])
            values += [1.0 if i == chosen else 0.0 for i in range(len(ACTION_SCALES[name]))]
        vector = torch.tensor(values, dtype=torch.float32)
        vector = torch.nan_to_num(vector, nan=0.0, posinf=1.0, neginf=-1.0)

        self.train_losses.append(train)
        if fresh:
            self.val_losses.append(float(val))
        if math.isfinite(log_update):
            self.update_ratios.append(log_update)
        self._reset_interval()
        return Observation(vector=vector, decision=decision, progress=progress, train_loss=train,
                           val_loss=float(val) if fresh else (self.val_losses[-1] if self.val_losses else None),
                           val_fresh=fresh)
