"""One LightningModule per method."""

from lit_digest.methods.byol import BYOL
from lit_digest.methods.codistillation import Codistillation
from lit_digest.methods.muse import MUSE, MUSEProcrustes

__all__ = ["BYOL", "MUSE", "Codistillation", "MUSEProcrustes"]
