"""Losses as pure functions with documented shapes, one family per module."""

from lit_digest.losses.byol import byol_loss, masked_cross_entropy, symmetric_byol_loss

__all__ = ["byol_loss", "masked_cross_entropy", "symmetric_byol_loss"]
