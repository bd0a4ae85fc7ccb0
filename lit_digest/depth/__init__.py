"""Monocular depth: boosting a depth estimator to high resolution by merging multi-resolution estimates
(Miangoleh, Dille, Mai, Paris, Aksoy, CVPR 2021, arXiv 2105.14021).

- ``boost/``: the method: ``DepthMerge`` (the pix2pix merge network around a frozen estimator), the pipeline
  (``resolution_search``, ``double_estimate``, ``select_patches``, ``boost``) and the guided-filter targets;
- ``estimator``: ``DepthEstimation``, MiDaS-style training of a base estimator; ``nets``: ``SmallDepthNet``;
- ``scenes`` / ``data``: procedural RGB-D scenes with exact depth, real RGB-D layouts, image folders;
- ``losses`` / ``metrics``: scale-shift-invariant losses, RMSE / AbsRel / depth-edge F1;
- ``callbacks``: ``DepthPanels`` (W&B), ``DepthPNGWriter`` (16-bit PNGs); ``experiment``: the measured effect.
"""

from lit_digest.depth.boost import BoostSettings, DepthMerge, MergeUNet, PatchDiscriminator, boost
from lit_digest.depth.callbacks import DepthPanels, DepthPNGWriter
from lit_digest.depth.data import ProceduralRGBDDataModule, RGBDFolderDataModule
from lit_digest.depth.estimator import DepthEstimation
from lit_digest.depth.nets import SmallDepthNet

__all__ = ["DepthMerge", "DepthEstimation", "SmallDepthNet", "MergeUNet", "PatchDiscriminator", "BoostSettings",
           "boost", "ProceduralRGBDDataModule", "RGBDFolderDataModule", "DepthPanels", "DepthPNGWriter"]
