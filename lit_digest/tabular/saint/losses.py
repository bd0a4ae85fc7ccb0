"""SAINT's pre-training losses (arXiv 2106.01342, Sec. 4), pure functions. The weights are the official
code's (``train.py``): contrastive ``lam0 = 0.5``, categorical denoising ``lam2 = 1``, continuous denoising
``lam3 = 10``; InfoNCE temperature ``nce_temp = 0.7``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["info_nce", "denoising_losses", "pretraining_loss"]


def info_nce(z1: Tensor, z2: Tensor, temperature: float = 0.7) -> Tensor:
    """Symmetric InfoNCE between the projections of two views of the same rows, ``z1, z2: (B, P)``: row i of
    one view must pick row i of the other among the B rows, in both directions, averaged
    (``(CE(z1 z2^T / t) + CE(z2 z1^T / t)) / 2``; the official code does not normalise the projections,
    only the tokens before them)."""
    logits = z1 @ z2.T / temperature  # (B, B)
    targets = torch.arange(z1.shape[0], device=z1.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def denoising_losses(cat_logits: list[Tensor], cont_pred: Tensor, x_cat: Tensor, x_cont: Tensor,
                     cont_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Reconstruct the clean row from the embeddings of its noisy view.

    * categorical: the sum over columns of each column's cross-entropy (mean over rows), ``cat_logits[j]: (B, K_j)``
      against ``x_cat[:, j]`` (official: ``l1 += CE(cat_outs[j], x_categ[:, j])``);
    * continuous: the squared error of ``cont_pred (B, N)`` against ``x_cont (B, N)``, averaged over the observed
      cells (``cont_mask`` 1); the official MSE also counts missing cells, whose target is only the filled-in mean.
    """
    zero = cont_pred.new_zeros(())
    cat = sum((F.cross_entropy(logits, x_cat[:, j]) for j, logits in enumerate(cat_logits)), zero)
    observed = cont_mask.sum()
    cont = ((cont_pred - x_cont) ** 2 * cont_mask).sum() / observed.clamp(min=1.0) if cont_pred.numel() else zero
    return cat, cont


def pretraining_loss(contrastive: Tensor, cat: Tensor, cont: Tensor, contrastive_weight: float = 0.5,
                     cat_weight: float = 1.0, cont_weight: float = 10.0) -> Tensor:
    """``lam0 * InfoNCE + lam2 * categorical + lam3 * continuous`` with the official weights."""
    return contrastive_weight * contrastive + cat_weight * cat + cont_weight * cont
