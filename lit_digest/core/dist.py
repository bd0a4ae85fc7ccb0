"""What distributed code needs beyond Lightning: gathers with and without gradient, byte counts.

Shapes: ``B`` rows per rank, ``W`` ranks. Every function is the identity (or zero) when the
process is not part of an initialised process group, so the same code runs on one device.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["world", "gather_with_grad", "gather_no_grad", "ring_allreduce_bytes", "model_bytes"]


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not running distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather ``x`` (``(B, ...)``, same shape on every rank) into ``(W * B, ...)``, rank-major.

    Gradients flow back to every rank's slice (``torch.distributed.nn.functional.all_gather``:
    its backward sums the incoming gradients across ranks). The identity when not distributed.
    """
    if world()[1] == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather a tensor that needs no gradient (labels, ids): ``(B, ...) -> (W * B, ...)``."""
    size = world()[1]
    if size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def ring_allreduce_bytes(num_bytes: int, world_size: int) -> float:
    """Bytes each rank sends (and receives) in a ring all-reduce of a ``num_bytes`` buffer over ``world_size``
    ranks: ``2 (W - 1) / W * num_bytes`` (reduce-scatter then all-gather, the NCCL/gloo ring algorithm)."""
    if world_size <= 1:
        return 0.0
    return 2.0 * (world_size - 1) / world_size * num_bytes


def model_bytes(module: nn.Module, trainable_only: bool = False) -> int:
    """Bytes of ``module``'s parameters (trainable ones only, or all parameters and buffers)."""
    tensors = [p for p in module.parameters() if p.requires_grad or not trainable_only]
    if not trainable_only:
        tensors += list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)
