"""One LightningModule per method."""

import warnings

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

# Methods keep their injected backbone in the hyperparameters on purpose: that is what lets
# `Method.load_from_checkpoint(path)` rebuild it (as its class_path config under the CLI).
warnings.filterwarnings("ignore", message=r"Attribute '(backbone|model)' is an instance of `nn.Module`")
