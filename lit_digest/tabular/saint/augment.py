"""SAINT's views for contrastive pre-training (arXiv 2106.01342, Sec. 4): CutMix in input space, then mixup
in embedding space. Pure functions of the batch and a random generator."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cutmix_rows", "mixup_embeddings"]


def cutmix_rows(x_cat: Tensor, x_cont: Tensor, cont_mask: Tensor, prob: float,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """CutMix for rows: each cell of row i is, with probability ``prob``, replaced by the same column's cell
    of row ``perm[i]`` (one random permutation of the batch); a continuous cell's missing flag moves with it.
    Official default ``prob = 0.1`` (``--pt_aug_lam``; ``augmentations.add_noise``).

    Returns ``(x_cat', x_cont', cont_mask', perm)`` with inputs of shapes ``(B, C)``, ``(B, N)``, ``(B, N)``."""
    b = x_cont.shape[0]
    device = x_cont.device
    perm = torch.randperm(b, generator=generator, device="cpu").to(device)
    take_cat = (torch.rand(x_cat.shape, generator=generator, device="cpu") < prob).to(device)  # (B, C)
    take_cont = (torch.rand(x_cont.shape, generator=generator, device="cpu") < prob).to(device)  # (B, N)
    return (torch.where(take_cat, x_cat[perm], x_cat), torch.where(take_cont, x_cont[perm], x_cont),
            torch.where(take_cont, cont_mask[perm], cont_mask), perm)


def mixup_embeddings(tokens: Tensor, alpha: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mixup of embedded rows: ``alpha * E(x'_i) + (1 - alpha) * E(x'_perm[i])`` for every token, with one random
    permutation of the batch. Official default ``alpha = 0.3`` (``--mixup_lam``; ``augmentations.mixup_data``
    computes ``lam * x + (1 - lam) * x[index]``).

    ``tokens``: ``(B, T, d)``; returns the mixed tokens and the permutation."""
    perm = torch.randperm(tokens.shape[0], generator=generator, device="cpu").to(tokens.device)
    return alpha * tokens + (1.0 - alpha) * tokens[perm], perm
