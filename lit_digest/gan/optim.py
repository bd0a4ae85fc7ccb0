"""Optimisers of GANs: one optimiser per player (generator, discriminator), each with its own schedule, stepped
once per batch under Lightning's manual optimisation (SC-FEGAN, GANs N' Roses)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from lit_digest.core.optim import Optim, Schedule, lr_factor, make_optimizer, steps_per_epoch

__all__ = ["scheduled_batches", "player_optimizers"]


def scheduled_batches(trainer: Any, players: int = 2) -> float:
    """Batches the schedules span: the run's length in batches. Each batch steps every player's optimiser once,
    so ``trainer.max_steps``, which counts optimiser steps, is ``players`` times the batches."""
    total = trainer.estimated_stepping_batches
    if trainer.max_steps is not None and trainer.max_steps > 0:
        per_epoch = trainer.num_training_batches
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
        total = min(math.ceil(trainer.max_steps / players), epochs * per_epoch)
    return total


def player_optimizers(module: Any, players: Sequence[tuple[Optim, Iterable[nn.Parameter]]]) -> list[dict]:
    """``configure_optimizers`` of a GAN: for each ``(optim, parameters)`` an optimiser and a per-batch schedule
    (``lr_factor`` over the run's batches and the data's epoch length), in the order given."""
    trainer = module.trainer
    total = scheduled_batches(trainer, len(players))
    epoch_steps = steps_per_epoch(trainer)
    configs = []
    for optim, params in players:
        optimizer = make_optimizer(optim, [{"params": [p for p in params if p.requires_grad]}])
        peak = optimizer.param_groups[0]["lr"]
        schedule = Schedule(optimizer, [lambda step, o=optim, p=peak: lr_factor(step, o, p, total, epoch_steps)])
        configs.append({"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}})
    return configs
