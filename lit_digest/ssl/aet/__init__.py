"""AET: representation learning by auto-encoding transformations, with the AED baseline (Zhang et al., arXiv
1901.04596; official code github.com/maple-research-lab/AET).

- ``transforms``: ``AffineTransformation``, ``ProjectiveTransformation`` (samplers with the official ranges and
  target encodings), ``warp`` (batched per-sample warps, kornia's ``warp_perspective``), ``homography_from_points``;
- ``views``: ``PadCropViews``, the official random crop of the 4-padded image and flip;
- ``nin``: ``NetworkInNetwork``, the encoder of the official CIFAR code;
- ``aet`` / ``aed``: the ``AET`` and ``AED`` systems;
- ``classifiers``: the paper's evaluation, ``BlockClassifier`` with ``NonLinearHead`` or ``ConvBlockHead`` on a
  frozen block (linear and kNN evaluation: ``lit_digest.ssl.LinearEval`` / ``KNNEval`` with
  ``NetworkInNetwork(feature_block=2)``);
- ``compare``: ``python -m lit_digest.ssl.aet.compare``, the numbers of ``docs/aet.md``.
"""

from lit_digest.ssl.aet.aed import AED, ImageDecoder
from lit_digest.ssl.aet.aet import AET, OFFICIAL_OPTIM, parameter_mse
from lit_digest.ssl.aet.classifiers import BlockClassifier, ConvBlockHead, NonLinearHead
from lit_digest.ssl.aet.nin import NetworkInNetwork
from lit_digest.ssl.aet.transforms import (
    AffineTransformation,
    ProjectiveTransformation,
    Transformation,
    Transformed,
    apply_matrix,
    homography_from_points,
    warp,
)
from lit_digest.ssl.aet.views import PadCropFlip, PadCropViews

__all__ = [
    "AET", "AED", "OFFICIAL_OPTIM", "parameter_mse", "ImageDecoder", "BlockClassifier", "NonLinearHead",
    "ConvBlockHead", "NetworkInNetwork", "Transformation", "AffineTransformation", "ProjectiveTransformation",
    "Transformed", "warp", "apply_matrix", "homography_from_points", "PadCropFlip", "PadCropViews",
]
