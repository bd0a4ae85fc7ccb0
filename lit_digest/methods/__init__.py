"""One LightningModule per method."""

from lit_digest.methods.byol import BYOL

__all__ = ["BYOL"]
