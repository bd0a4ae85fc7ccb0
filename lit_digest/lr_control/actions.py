"""The controller's actions: relative changes of an optimiser's hyperparameters (Almeida et al., arXiv 2106.00958).

Each controlled hyperparameter has a small set of multiplicative factors, one of which the controller picks at
every decision. The sets are those of the authors' example training config (``example_config.jsonnet`` of
github.com/openai/LHOPT): the learning rate by ``0.5, 0.707, 0.9, 1, 1.1, 1.414, 2``; weight decay and
``1 - beta1`` (the momentum's "one minus beta") by ``0.5`` or ``2``, to which we add ``1`` (no change) so that a
policy can leave them alone. The paper also controls Adam's epsilon, ``1 - beta2`` and gradient clipping of its own
inner optimiser (CIAO); a Lightning run brings its own optimiser, so we control only what every optimiser of this
zoo has: the learning rate (all), weight decay (SGD, LARS, Adam, AdamW) and momentum (SGD/LARS ``momentum``,
Adam's ``beta1``).

Changes are relative to the run's own values and compose with the run's learning-rate schedule: the learning rate
becomes ``schedule(t) x (product of the factors chosen so far)``. For that ``scale_hyperparameter`` multiplies the
group's ``lr`` (what the next step uses and what recursive schedulers such as ``StepLR`` build on) and the
schedulers' ``base_lrs`` (what closed-form schedulers such as ``LambdaLR``, used by every method here through
``lit_digest.core.optim.configure_optim``, multiply).

The cumulative factor of each hyperparameter stays within ``SCALE_BOUNDS`` of the run's starting value (the paper
bounds absolute values, e.g. lr in ``[1e-8, 1]``; relative bounds suit runs whose learning rates differ by orders
of magnitude, such as LARS at ``lr x batch / 256``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from torch.optim import Optimizer

__all__ = ["HYPERPARAMETERS", "ACTION_SCALES", "SCALE_BOUNDS", "NO_CHANGE", "action_sizes", "read_hyperparameter",
           "scale_hyperparameter", "bounded_factor"]

HYPERPARAMETERS: tuple[str, ...] = ("lr", "weight_decay", "momentum")
ACTION_SCALES: dict[str, tuple[float, ...]] = {
    "lr": (0.5, 0.707, 0.9, 1.0, 1.1, 1.414, 2.0),
    "weight_decay": (0.5, 1.0, 2.0),
    "momentum": (0.5, 1.0, 2.0),  # multiplies 1 - beta1 (or 1 - momentum): 2 means less momentum
}
NO_CHANGE: dict[str, int] = {name: scales.index(1.0) for name, scales in ACTION_SCALES.items()}
SCALE_BOUNDS: dict[str, tuple[float, float]] = {"lr": (1e-3, 1e3), "weight_decay": (1e-2, 1e2), "momentum": (1e-2, 1e2)}
_MIN_ONE_MINUS_BETA = 1e-3  # beta1 / momentum never above 0.999
_LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")  # min_lr/max_lr: OneCycleLR and CyclicLR keep them per group


def action_sizes(hyperparameters: Sequence[str] = HYPERPARAMETERS) -> tuple[int, ...]:
    return tuple(len(ACTION_SCALES[name]) for name in hyperparameters)


def read_hyperparameter(optimizer: Optimizer, name: str) -> list[float | None]:
    """The value of ``name`` in each parameter group (None where the group has none); for ``momentum`` Adam's
    ``beta1`` or SGD/LARS ``momentum``."""
    values: list[float | None] = []
    for group in optimizer.param_groups:
        if name == "momentum":
            values.append(group["betas"][0] if "betas" in group else group.get("momentum"))
        else:
            values.append(group.get(name))
    return values


def bounded_factor(name: str, cumulative: float, factor: float) -> float:
    """``factor`` cut so that ``cumulative x factor`` stays within ``SCALE_BOUNDS[name]``."""
    low, high = SCALE_BOUNDS[name]
    return min(max(cumulative * factor, low), high) / cumulative


def _one_minus_scaled(value: float, factor: float) -> float:
    return 1.0 - min(max((1.0 - value) * factor, _MIN_ONE_MINUS_BETA), 1.0)


def scale_hyperparameter(optimizer: Optimizer, name: str, factor: float, schedulers: Iterable = ()) -> bool:
    """Multiplies ``name`` in every parameter group of ``optimizer`` by ``factor`` (for ``momentum``: ``1 - beta1``
    by ``factor``), and the ``base_lrs`` of the ``schedulers`` that drive it for ``lr``. Groups without the
    hyperparameter, or with momentum 0 (plain SGD), are left alone. Returns whether anything changed."""
    if factor == 1.0:
        return False
    changed = False
    for i, group in enumerate(optimizer.param_groups):
        if name == "lr":
            for key in _LR_KEYS:
                if key in group and isinstance(group[key], float | int):
                    group[key] = group[key] * factor
            changed = True
        elif name == "weight_decay" and group.get("weight_decay"):
            group["weight_decay"] = group["weight_decay"] * factor
            changed = True
        elif name == "momentum":
            if "betas" in group:
                beta1, beta2 = group["betas"]
                group["betas"] = (_one_minus_scaled(beta1, factor), beta2)
                changed = True
            elif group.get("momentum"):
                group["momentum"] = _one_minus_scaled(group["momentum"], factor)
                changed = True
        if name == "lr":
            for scheduler in schedulers:
                if getattr(scheduler, "optimizer", None) is optimizer and hasattr(scheduler, "base_lrs"):
                    scheduler.base_lrs[i] = scheduler.base_lrs[i] * factor
    return changed


def log_scale_feature(name: str, cumulative: float) -> float:
    """``log(cumulative) / log(bound)`` in ``[-1, 1]``: how far the controller has moved ``name``."""
    low, high = SCALE_BOUNDS[name]
    bound = math.log(high) if cumulative >= 1 else -math.log(low)
    return math.log(cumulative) / bound
