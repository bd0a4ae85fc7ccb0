"""Losses as pure functions with documented shapes, one family per module."""

from lit_digest.losses.byol import byol_loss, masked_cross_entropy, symmetric_byol_loss
from lit_digest.losses.contrastive import gather_with_grad, nt_xent_loss, supcon_loss

__all__ = [
    "byol_loss", "gather_with_grad", "masked_cross_entropy", "nt_xent_loss", "supcon_loss", "symmetric_byol_loss",
]
