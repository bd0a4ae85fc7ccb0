"""Optimisers and learning-rate schedules for every method: LARS, one typed ``Optim`` block, one builder.

A method takes ``optim: Optim = Optim(...its paper's defaults...)`` and its ``configure_optimizers``
is ``return configure_optim(self, param_groups, self.optim)``. ``configure_optim`` builds
the optimiser, scales the learning rate by the global batch when asked, and schedules it per
optimisation step from the run's real length (``trainer.estimated_stepping_batches``) and the
data's real epoch length (``trainer.num_training_batches``).

lightning-bolts used to provide LARS and the warmup-cosine schedule; it pins pytorch-lightning<2.0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["LARS", "Optim", "Schedule", "configure_optim", "lr_factor", "scaled_lr", "split_decay_groups",
           "steps_per_epoch", "global_batch_size", "make_optimizer"]


class LARS(Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al., arXiv 1708.03888) with momentum.

    For a parameter ``w`` with gradient ``g`` in a group that is adapted, when ``||w|| > 0`` and
    ``||g|| > 0``:

        r = eta * ||w|| / (||g|| + wd * ||w|| + eps)
        r = min(r / lr, 1)                              (only with ``clip_lr``: NVIDIA's LARC)
        u = r * (g + wd * w)

    otherwise (a zero weight or gradient norm, or a group with ``lars_exclude=True``: biases and
    normalisation parameters) the update is the plain gradient ``u = g``, without weight decay;
    then ``buf = momentum * buf + u`` and ``w = w - lr * buf``. This is solo-learn's LARS
    (``solo/utils/lars.py``, from lightning-bolts), whose CIFAR runs our defaults reproduce
    (eta 0.02, clipping on, ``exclude_bias_n_norm``). The BYOL paper used eta = 1e-3 on ImageNet.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.02, clip_lr: bool = True, eps: float = 1e-8) -> None:
        if lr < 0:
            raise ValueError(f"LARS: invalid learning rate {lr}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, clip_lr=clip_lr,
                        eps=eps, lars_exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                update = g
                if not group["lars_exclude"]:
                    w_norm, g_norm = torch.linalg.vector_norm(w), torch.linalg.vector_norm(g)
                    ratio = group["eta"] * w_norm / (g_norm + wd * w_norm + group["eps"])
                    if group["clip_lr"]:  # at lr = 0 (a warmup's first step) r / lr is inf: the limit, 1
                        ratio = torch.clamp(ratio / lr, max=1.0)
                    adapt = (w_norm > 0) & (g_norm > 0)  # a tensor: no host sync inside the step
                    update = torch.where(adapt, (g + wd * w) * ratio, g)
                state = self.state[w]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = update.clone()
                else:
                    state["momentum_buffer"].mul_(momentum).add_(update)
                w.add_(state["momentum_buffer"], alpha=-lr)
        return loss


@dataclass  # not frozen: Lightning's YAML writer (CSV/TensorBoard loggers) refuses frozen dataclasses in hparams
class Optim:
    """A method's optimiser and learning-rate schedule, as one typed block of its config::

        model:
          init_args:
            optim: {name: lars, lr: 1.0, weight_decay: 1.0e-5, warmup_epochs: 10}

    Every method gives its own paper defaults; a config or ``--model.init_args.optim.lr 0.5``
    changes single fields.

    Args:
        name: ``"lars"``, ``"sgd"``, ``"adamw"`` or ``"adam"``.
        lr: peak learning rate; at a global batch of 256 when ``scale_lr_by_batch``.
        weight_decay: L2 (LARS, SGD, Adam) or decoupled (AdamW) decay of the weights; biases and
            normalisation parameters get none (``split_decay_groups``).
        momentum, nesterov: SGD / LARS momentum.
        betas: Adam / AdamW.
        lars_eta, lars_clip_lr: LARS trust coefficient and LARC clipping.
        scale_lr_by_batch: ``lr x global batch / 256``, the linear scaling rule (Goyal et al.
            1706.02677; BYOL 2006.07733 appendix C; SimCLR 2002.05709 appendix B.1).
        schedule: ``"warmup_cosine"`` (linear warmup, then cosine decay to ``final_lr_ratio x lr``
            at the last step), ``"exponential"`` (after the warmup, ``lr x final_lr_ratio ** progress``:
            an exponential decay to ``final_lr_ratio x lr`` at the last step, NeRF's schedule),
            ``"step"`` (``x gamma`` at each milestone epoch, after the warmup) or ``"constant"`` (after the
            warmup). Evaluated at every optimisation step.
        warmup_epochs, warmup_steps: warmup length in epochs of the real data or in steps (set one).
        warmup_start_lr: learning rate at the first warmup step (solo-learn: 3e-5).
        final_lr_ratio: the cosine's end as a fraction of the peak (0 for BYOL/SimCLR; GPT-J 0.1).
        milestones, gamma: the ``"step"`` schedule (epochs).

    A run bounded only by time (``--trainer.max_time``, no step or epoch budget) has no last step
    for the cosine: its learning rate stays at the peak after the warmup (a warning says so).
    """

    name: Literal["lars", "sgd", "adamw", "adam"] = "sgd"
    lr: float = 0.1
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    lars_eta: float = 0.02
    lars_clip_lr: bool = True
    scale_lr_by_batch: bool = False
    schedule: Literal["warmup_cosine", "exponential", "step", "constant"] = "warmup_cosine"
    warmup_epochs: float = 0.0
    warmup_steps: int = 0
    warmup_start_lr: float = 0.0
    final_lr_ratio: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.name not in ("lars", "sgd", "adamw", "adam"):
            raise ValueError(f"optim.name must be 'lars', 'sgd', 'adamw' or 'adam', got {self.name!r}")
        if self.schedule not in ("warmup_cosine", "exponential", "step", "constant"):
            raise ValueError("optim.schedule must be 'warmup_cosine', 'exponential', 'step' or 'constant', got "
                             f"{self.schedule!r}")
        if self.lr < 0 or self.weight_decay < 0:
            raise ValueError(f"optim.lr and optim.weight_decay must be >= 0, got {self.lr}, {self.weight_decay}")
        if self.warmup_epochs and self.warmup_steps:
            raise ValueError("set optim.warmup_epochs or optim.warmup_steps, not both")
        if self.warmup_epochs < 0 or self.warmup_steps < 0:
            raise ValueError("optim.warmup_epochs and optim.warmup_steps must be >= 0")
        if not 0.0 <= self.final_lr_ratio <= 1.0:
            raise ValueError(f"optim.final_lr_ratio must be in [0, 1], got {self.final_lr_ratio}")
        if self.schedule == "exponential" and self.final_lr_ratio == 0:
            raise ValueError("optim.schedule 'exponential' decays to final_lr_ratio x lr: set final_lr_ratio > 0 "
                             "(NeRF: 0.1)")


# Checkpoints keep a method's Optim in their hyperparameters: let torch.load(weights_only=True) read it.
torch.serialization.add_safe_globals([Optim])


def split_decay_groups(modules: Iterable[nn.Module], **group_options) -> list[dict]:
    """Two parameter groups: weights, and biases + normalisation parameters (1-d tensors),
    the latter without weight decay and excluded from LARS adaptation (``exclude_bias_n_norm``)."""
    decay, no_decay = [], []
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, **group_options},
        {"params": no_decay, **group_options, "weight_decay": 0.0, "lars_exclude": True},
    ]


def make_optimizer(optim: Optim, groups: list[dict]) -> Optimizer:
    """The optimiser named by ``optim`` over prepared groups (which may carry their own ``lr``,
    ``weight_decay`` and ``lars_exclude``; other optimisers keep ``lars_exclude`` as an unused key)."""
    if optim.name == "lars":
        return LARS(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay,
                    eta=optim.lars_eta, clip_lr=optim.lars_clip_lr)
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay,
                               nesterov=optim.nesterov)
    cls = torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam
    return cls(groups, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def scaled_lr(base_lr: float, global_batch_size: int, reference: int = 256) -> float:
    """Linear scaling rule ``lr = base_lr * global_batch / 256``."""
    return base_lr * global_batch_size / reference


def global_batch_size(trainer: Any) -> int:
    """Per-device batch x devices x nodes x gradient accumulation."""
    batch = getattr(trainer.datamodule, "batch_size", None)
    if not isinstance(batch, int):
        raise ValueError(
            "Scaling the learning rate by the batch size needs a DataModule with an int `batch_size`; "
            "use one, or set model.init_args.optim.scale_lr_by_batch: false."
        )
    return batch * trainer.world_size * trainer.accumulate_grad_batches


def steps_per_epoch(trainer: Any) -> int | None:
    """Optimisation steps in one epoch of the real training data (after ``limit_train_batches``),
    or None when the loader has no length. Loads the training data if the Trainer has not yet (as
    ``estimated_stepping_batches`` does, except for runs without an epoch budget)."""
    if trainer.train_dataloader is None:
        trainer.fit_loop.setup_data()
    batches = trainer.num_training_batches
    if batches is None or math.isinf(batches):
        return None
    return max(1, math.ceil(batches / trainer.accumulate_grad_batches))


def lr_factor(step: int, optim: Optim, base_lr: float, total_steps: float, epoch_steps: int | None) -> float:
    """The learning rate at optimisation ``step`` as a multiple of ``base_lr`` (the group's peak)."""
    if optim.warmup_steps:
        warmup = optim.warmup_steps
    elif optim.warmup_epochs:
        if epoch_steps is None:
            raise ValueError("optim.warmup_epochs needs a training loader with a length: use optim.warmup_steps")
        warmup = round(optim.warmup_epochs * epoch_steps)
    else:
        warmup = 0
    if base_lr == 0:
        return 0.0
    if step < warmup:
        start = min(optim.warmup_start_lr, base_lr) / base_lr
        return start + (1.0 - start) * step / warmup
    if optim.schedule == "constant" or (optim.schedule in ("warmup_cosine", "exponential")
                                        and math.isinf(total_steps)):
        return 1.0
    if optim.schedule == "step":
        if epoch_steps is None:
            raise ValueError("optim.schedule 'step' counts epochs: it needs a training loader with a length")
        epoch = step // epoch_steps
        return optim.gamma ** sum(epoch >= m for m in optim.milestones)
    progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
    floor = optim.final_lr_ratio
    if optim.schedule == "exponential":
        return floor**progress
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Schedule(LambdaLR):
    """``LambdaLR`` of ``lr_factor`` whose peaks come from the configuration, not from a checkpoint: resuming a
    run with another ``optim.lr`` (after a non-finite loss, say) trains with the new rate from the step it
    stopped at, where a plain ``LambdaLR`` would restore the old one."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        configured = list(self.base_lrs)
        super().load_state_dict(state_dict)
        self.base_lrs = configured
        for group, base, schedule in zip(self.optimizer.param_groups, configured, self.lr_lambdas, strict=True):
            group["initial_lr"] = base
            group["lr"] = base * schedule(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def configure_optim(module: Any, groups: list[dict], optim: Optim) -> dict[str, Any]:
    """``configure_optimizers`` of every method: the optimiser of ``optim`` over ``groups``, and a
    per-step schedule (``lr_factor``) for each group around its own peak (a group may carry its own
    ``lr``, e.g. an online probe's; the batch scaling applies to it too)."""
    trainer = module.trainer
    total = trainer.estimated_stepping_batches  # also loads the training data: its length is known after
    epoch_steps = steps_per_epoch(trainer)
    if math.isinf(total) and optim.schedule in ("warmup_cosine", "exponential"):
        warnings.warn(f"Training is bounded by time only, so the {optim.schedule} schedule has no last step: the "
                      "learning rate stays at its peak after the warmup. Set trainer.max_steps or max_epochs for the "
                      "decay.",
                      stacklevel=2)
    factor = scaled_lr(1.0, global_batch_size(trainer)) if optim.scale_lr_by_batch else 1.0
    groups = [{**g, "lr": g.get("lr", optim.lr) * factor} for g in groups]
    optimizer = make_optimizer(optim, groups)
    schedules: list[Callable[[int], float]] = [
        (lambda step, peak=g["lr"]: lr_factor(step, optim, peak, total, epoch_steps)) for g in optimizer.param_groups
    ]
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": Schedule(optimizer, schedules), "interval": "step"}}
