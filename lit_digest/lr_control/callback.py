"""``HyperparameterControl``: a controller that changes an optimiser's hyperparameters a fixed number of times per
run, on any LightningModule (Almeida et al., arXiv 2106.00958)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from lit_digest.core.lightning import Callback, LightningModule, Trainer
from lit_digest.lr_control.actions import (
    ACTION_SCALES,
    HYPERPARAMETERS,
    NO_CHANGE,
    bounded_factor,
    read_hyperparameter,
    scale_hyperparameter,
)
from lit_digest.lr_control.features import FEATURE_NAMES, Observation, RunStatistics
from lit_digest.lr_control.policy import Controller, PlateauController

__all__ = ["HyperparameterControl", "decision_steps"]


def decision_steps(total_steps: int, decisions: int) -> list[int]:
    """The optimisation steps at which the controller acts: ``k * total // decisions`` for ``k < decisions``, so
    decision ``k`` governs the ``k``-th of ``decisions`` equal intervals, whatever the run's length (the paper's
    "outer steps")."""
    if total_steps < decisions:
        raise ValueError(f"HyperparameterControl: {decisions} decisions need a run of at least {decisions} "
                         f"optimisation steps, this one has {total_steps}; lower `decisions`.")
    return [k * total_steps // decisions for k in range(decisions)]


class HyperparameterControl(Callback):
    """Attaches a controller to the run's optimiser: at ``decisions`` evenly spaced optimisation steps it computes
    the run's unitless features (``lit_digest.lr_control.features``), asks the controller for one relative action
    per hyperparameter and multiplies the learning rate (composing with the run's schedule), weight decay and
    ``1 - momentum`` by the chosen factors (``lit_digest.lr_control.actions``). It changes nothing else: with
    every factor 1 the run is bit-for-bit the run without the callback.

    A decision happens just before the optimiser step at ``global_step == k * T // decisions`` (``T`` =
    ``trainer.estimated_stepping_batches``), so it sees that step's gradients and governs that step's update.
    Validation losses come from ``trainer.callback_metrics[monitor]`` after each validation: the features say
    whether one is fresh (measured since the last decision). Under DDP rank 0 decides and broadcasts.

    Every decision is logged to the run's loggers (W&B panels under ``lr_control/``): the decision index, each
    factor applied, each hyperparameter's cumulative scale, the first group's learning rate after the change and,
    with ``log_features``, every feature; ``self.history`` keeps the same records.

    Args:
        controller: ``PlateauController()`` (the default), ``LearnedController(checkpoint=...)`` or your own
            ``Controller``.
        decisions: how many times per run the controller acts (16: the middle of the paper's 2-128 outer steps).
        hyperparameters: which of ``lr``, ``weight_decay``, ``momentum`` it may change.
        monitor: the validation key: a loss (``mode="min"``), or an accuracy in [0, 1] (``mode="max"``, e.g.
            BYOL's ``val/knn_acc``), which the controller then sees as the error ``1 - accuracy``.
        mode: ``"min"`` or ``"max"``, as above.
        optimizer_index: which of ``trainer.optimizers`` it controls.
        samples_per_interval: steps per interval at which norms and cosines are measured (the paper: every 4th).
        log_features: also log the feature vector at each decision.
    """

    def __init__(self, controller: Controller | None = None, decisions: int = 16,
                 hyperparameters: Sequence[str] = HYPERPARAMETERS, monitor: str = "val/loss",
                 mode: Literal["min", "max"] = "min", optimizer_index: int = 0, samples_per_interval: int = 8,
                 log_features: bool = False) -> None:
        unknown = set(hyperparameters) - set(HYPERPARAMETERS)
        if unknown:
            raise ValueError(f"HyperparameterControl controls {HYPERPARAMETERS}, not {sorted(unknown)}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if decisions < 1 or samples_per_interval < 1:
            raise ValueError("decisions and samples_per_interval must be >= 1")
        self.controller = controller if controller is not None else PlateauController()
        self.decisions, self.hyperparameters = decisions, tuple(hyperparameters)
        self.monitor, self.mode, self.optimizer_index = monitor, mode, optimizer_index
        self.samples_per_interval, self.log_features = samples_per_interval, log_features
        self._reset()

    def _reset(self) -> None:
        self.stats = RunStatistics()
        self.history: list[dict] = []
        self.val_curve: list[tuple[int, float]] = []  # (global_step, validation loss) after each validation
        self.scales = dict.fromkeys(HYPERPARAMETERS, 1.0)
        self.last_actions = dict(NO_CHANGE)
        self.next_decision = 0
        self._val_step: int | None = None
        self._restored = False
        self._sampling = False

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"history": self.history, "val_curve": self.val_curve, "scales": self.scales,
                "last_actions": self.last_actions, "next_decision": self.next_decision, "val_step": self._val_step,
                "stats": self.stats.state_dict(), "controller": self.controller.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.history, self.val_curve = list(state["history"]), [tuple(v) for v in state["val_curve"]]
        self.scales, self.last_actions = dict(state["scales"]), dict(state["last_actions"])
        self.next_decision, self._val_step = state["next_decision"], state["val_step"]
        self.stats.load_state_dict(state["stats"])
        self.controller.load_state_dict(state["controller"])
        self._restored = True

    # -- hooks ------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._restored:  # a new run (a resumed one has just loaded its state)
            self._reset()
            self.controller.reset()
        self._restored = False

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError("HyperparameterControl spreads its decisions over the run: set trainer.max_steps or "
                             "max_epochs (a run bounded by max_time only has no known length).")
        self.total_steps = int(total)
        self.steps = decision_steps(self.total_steps, self.decisions)
        interval = max(self.total_steps // self.decisions, 1)
        self.sample_every = max(interval // self.samples_per_interval, 1)
        self.optimizer = trainer.optimizers[self.optimizer_index]
        self.schedulers = [config.scheduler for config in trainer.lr_scheduler_configs]
        self.stats.attach([p for group in self.optimizer.param_groups for p in group["params"]])

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss) -> None:
        self.stats.add_loss(loss)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        if getattr(optimizer, "_optimizer", optimizer) is not self.optimizer:
            return
        step = trainer.global_step
        deciding = self.next_decision < len(self.steps) and step == self.steps[self.next_decision]
        if deciding or step % self.sample_every == 0:
            self.stats.sample_before_step(self.optimizer)
            self._sampling = True
        if deciding:
            self._decide(trainer, step)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if self._sampling:
            self.stats.sample_after_step()
            self._sampling = False

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        value = 1.0 - value if self.mode == "max" else value
        self.val_curve.append((trainer.global_step, value))
        self._val_step = trainer.global_step

    # -- the decision -----------------------------------------------------------------------------
    def _decide(self, trainer: Trainer, step: int) -> None:
        k = self.next_decision
        previous = self.steps[k - 1] if k > 0 else -1
        fresh = self._val_step is not None and self._val_step > previous
        val = self.val_curve[-1][1] if self.val_curve else None
        obs: Observation = self.stats.observe(k, step / self.total_steps, val, fresh, self.scales, self.last_actions)
        actions = self.controller.decide(obs) if trainer.is_global_zero else dict(NO_CHANGE)
        actions = trainer.strategy.broadcast(actions, src=0)

        record: dict = {"decision": k, "step": step}
        for name in HYPERPARAMETERS:
            index = actions[name] if name in self.hyperparameters else NO_CHANGE[name]
            factor = bounded_factor(name, self.scales[name], ACTION_SCALES[name][index])
            if not scale_hyperparameter(self.optimizer, name, factor, self.schedulers):
                factor = 1.0  # the optimiser has no such hyperparameter (e.g. SGD without momentum)
            self.scales[name] *= factor
            self.last_actions[name] = index
            record[f"{name}_factor"] = factor
            record[f"{name}_scale"] = self.scales[name]
        record["lr"] = read_hyperparameter(self.optimizer, "lr")[0]
        record["train_loss"], record["val_loss"] = obs.train_loss, obs.val_loss if obs.val_fresh else None
        self.history.append(record)
        self.next_decision += 1

        metrics = {f"lr_control/{key}": float(value) for key, value in record.items()
                   if isinstance(value, int | float) and value is not None}
        if self.log_features:
            metrics.update({f"lr_control/feature/{n}": float(v) for n, v in zip(FEATURE_NAMES, obs.vector)})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
