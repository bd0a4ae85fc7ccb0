"""Exponential moving averages of network weights (BYOL's target network)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["cosine_tau", "update_ema", "copy_frozen"]


def cosine_tau(step: int, total_steps: int, base_tau: float = 0.99, final_tau: float = 1.0) -> float:
    """BYOL's target decay rate (arXiv 2006.07733, section 3.2).

    ``tau = 1 - (1 - tau_base) * (cos(pi * k / K) + 1) / 2``, with ``k`` the current step and
    ``K`` the total number of steps; ``tau`` goes from ``base_tau`` at step 0 to ``final_tau``
    at step K (the paper: 0.996 for ImageNet, solo-learn's CIFAR setting 0.99 -> 1.0).
    """
    if total_steps <= 0:
        return final_tau
    progress = min(max(step / total_steps, 0.0), 1.0)
    return final_tau - (final_tau - base_tau) * (math.cos(math.pi * progress) + 1) / 2


@torch.no_grad()
def update_ema(online: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- tau * target + (1 - tau) * online`` for every parameter.

    Buffers (BatchNorm running statistics) are not averaged: the target keeps its own,
    updated by its forward passes in training mode.
    """
    online_params = list(online.parameters())
    target_params = list(target.parameters())
    if len(online_params) != len(target_params):
        raise ValueError("online and target networks have different parameter lists")
    torch._foreach_lerp_(target_params, online_params, 1.0 - tau)


def copy_frozen(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that takes no gradients."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin
