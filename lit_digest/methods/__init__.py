"""One LightningModule per method."""

from lit_digest.methods.byol import BYOL
from lit_digest.methods.codistillation import Codistillation
from lit_digest.methods.knn_eval import KNNEval
from lit_digest.methods.linear_eval import LinearEval
from lit_digest.methods.muse import MUSE, MUSEProcrustes
from lit_digest.methods.simclr import SimCLR
from lit_digest.methods.supcon import SupCon
from lit_digest.methods.supervised import Supervised

__all__ = [
    "BYOL", "MUSE", "Codistillation", "KNNEval", "LinearEval", "MUSEProcrustes", "SimCLR", "SupCon", "Supervised",
]
