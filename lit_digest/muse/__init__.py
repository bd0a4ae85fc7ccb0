"""MUSE: word translation without parallel data (Conneau et al., arXiv 1710.04087).

Systems: ``MUSE`` (unsupervised: adversarial, then Procrustes refinement) and ``MUSEProcrustes``
(supervised). They compose an ``AlignmentEvaluator`` (``evaluator``) over the parts:

- ``csls``: chunked nearest neighbours and CSLS; ``dictionary``: induced, seeded and read dictionaries;
- ``mapping``: W, the discriminator, Procrustes; ``metrics``: P@k and the unsupervised criterion;
- ``vec_io`` / ``export``: embedding files in and out; ``synthetic``: a pair with a known answer;
- ``data``: the DataModules; ``callbacks``: ``ExportAlignment``.
"""

from lit_digest.muse.callbacks import ExportAlignment
from lit_digest.muse.data import EmbeddingsDataModule, SyntheticEmbeddingsDataModule
from lit_digest.muse.evaluator import AlignmentEvaluator, InductionSettings
from lit_digest.muse.mapping import LanguageDiscriminator, LinearMapping
from lit_digest.muse.supervised import MUSEProcrustes
from lit_digest.muse.unsupervised import MUSE
from lit_digest.muse.vec_io import EmbeddingFormatError, Embeddings

__all__ = [
    "MUSE", "MUSEProcrustes", "AlignmentEvaluator", "InductionSettings", "EmbeddingsDataModule",
    "SyntheticEmbeddingsDataModule", "ExportAlignment", "LinearMapping", "LanguageDiscriminator", "Embeddings",
    "EmbeddingFormatError",
]
