"""Optimisers and schedules shared by the methods: LARS, warmup + cosine, LR scaling.

lightning-bolts used to provide these; it pins pytorch-lightning<2.0, so they live here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn
from torch.optim import Optimizer

__all__ = ["LARS", "warmup_cosine", "scaled_lr", "split_decay_groups", "build_optimizer",
           "OptimizerName"]

OptimizerName = Literal["lars", "sgd", "adamw"]


class LARS(Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al., arXiv 1708.03888) with momentum.

    For each parameter ``w`` with gradient ``g`` in a group that is adapted:

        u = g + wd * w
        r = eta * ||w|| / (||g|| + wd * ||w|| + eps)   (1 when ||w|| or ||g|| is 0)
        r = min(r / lr, 1)                              (only with ``clip_lr``: NVIDIA's LARC)
        buf = momentum * buf + r * u
        w = w - lr * buf

    Groups with ``lars_exclude=True`` (biases and normalisation parameters, as BYOL
    appendix C and solo-learn do) take the plain momentum-SGD step ``buf = m * buf + g``.
    Defaults follow solo-learn's CIFAR BYOL run (eta 0.02, clip_lr); the BYOL paper used
    eta = 1e-3 on ImageNet.
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
                    ratio = torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))
                    if group["clip_lr"] and lr > 0:
                        ratio = torch.clamp(ratio / lr, max=1.0)
                    update = (g + wd * w) * ratio
                elif wd != 0:
                    update = g + wd * w
                state = self.state[w]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = update.clone()
                else:
                    state["momentum_buffer"].mul_(momentum).add_(update)
                w.add_(state["momentum_buffer"], alpha=-lr)
        return loss


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float,
                  warmup_start_lr: float = 0.0, final_lr: float = 0.0) -> float:
    """Linear warmup from ``warmup_start_lr`` to ``base_lr`` over ``warmup_steps``, then a
    cosine decay to ``final_lr`` at ``total_steps`` (BYOL 2006.07733 appendix C: 10 warmup
    epochs, cosine decay without restarts). Evaluated per optimisation step.
    """
    if step < warmup_steps:
        return warmup_start_lr + (base_lr - warmup_start_lr) * step / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return final_lr + (base_lr - final_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def scaled_lr(base_lr: float, global_batch_size: int, reference: int = 256) -> float:
    """Linear scaling rule ``lr = base_lr * global_batch / 256`` (BYOL appendix C, SimCLR B.1)."""
    return base_lr * global_batch_size / reference


def split_decay_groups(modules: Iterable[nn.Module], **group_options) -> list[dict]:
    """Two parameter groups: weights, and biases + normalisation parameters (1-d tensors),
    the latter without weight decay and excluded from LARS adaptation."""
    decay, no_decay = [], []
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, **group_options},
        {"params": no_decay, **group_options, "weight_decay": 0.0, "lars_exclude": True},
    ]


def build_optimizer(name: OptimizerName, groups: list[dict], lr: float, weight_decay: float,
                    momentum: float = 0.9, eta: float = 0.02, clip_lr: bool = True) -> Optimizer:
    """Make the optimiser named in a config from prepared parameter groups."""
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, clip_lr=clip_lr)
    plain = [{k: v for k, v in g.items() if k != "lars_exclude"} for g in groups]
    if name == "sgd":
        return torch.optim.SGD(plain, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(plain, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"Unknown optimizer {name!r}: choose one of 'lars', 'sgd', 'adamw'")
