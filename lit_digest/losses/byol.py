"""BYOL's regression loss and a label-masked cross-entropy. Shapes: ``B`` batch, ``D`` embedding size."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["byol_loss", "symmetric_byol_loss", "masked_cross_entropy"]


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss (arXiv 2006.07733, eq. 2), averaged over the batch.

    ``L = || p/||p|| - z/||z|| ||^2 = 2 - 2 * <p, z> / (||p|| * ||z||)``.

    Args:
        p: online predictions, ``(B, D)``.
        z: target projections, ``(B, D)``; treated as a constant (stop-gradient).
    Returns:
        scalar tensor.
    """
    p = F.normalize(p, dim=-1)
    z = F.normalize(z.detach(), dim=-1)
    return (2 - 2 * (p * z).sum(dim=-1)).mean()


def symmetric_byol_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """BYOL's symmetrized loss ``L + L~`` (arXiv 2006.07733, section 3.2).

    ``p1, p2``: online predictions of views 1 and 2; ``z1, z2``: target projections of
    views 1 and 2, all ``(B, D)``. View 1's prediction regresses view 2's target and
    vice versa.
    """
    return byol_loss(p1, z2) + byol_loss(p2, z1)


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -1) -> torch.Tensor:
    """Cross-entropy over the samples whose label is not ``ignore_index`` (unlabeled images,
    e.g. STL-10's unlabeled split); exactly 0 (with a graph) when no sample is labeled.

    logits: ``(B, C)``; labels: ``(B,)``.
    """
    total = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    count = (labels != ignore_index).sum().clamp_min(1)  # no host sync: safe inside a step
    return total / count
