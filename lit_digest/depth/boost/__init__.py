"""The boosting method of Miangoleh et al. (arXiv 2105.14021): merge network, pipeline, guided-filter targets.

- ``nets``: ``MergeUNet`` (pix2pix U-Net generator), ``PatchDiscriminator``; ``losses``: GAN + L1;
- ``guided``: the guided filter and the training-pair construction;
- ``pipeline``: resolution search (R_0 / R_20), double estimation, patch selection, ``boost``;
- ``system``: ``DepthMerge``, the LightningModule.
"""

from lit_digest.depth.boost.nets import MergeUNet, PatchDiscriminator
from lit_digest.depth.boost.pipeline import BoostSettings, boost, double_estimate, resolution_search, select_patches
from lit_digest.depth.boost.system import DepthMerge

__all__ = ["DepthMerge", "MergeUNet", "PatchDiscriminator", "BoostSettings", "boost", "double_estimate",
           "resolution_search", "select_patches"]
