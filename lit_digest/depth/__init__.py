"""Monocular depth: boosting a depth estimator to high resolution by merging multi-resolution estimates
(Miangoleh, Dille, Mai, Paris, Aksoy, CVPR 2021, arXiv 2105.14021).

- ``boost/``: the method: ``DepthMerge`` (the pix2pix merge network around a frozen estimator), the pipeline
  (``resolution_search``, ``double_estimate``, ``select_patches``, ``boost``) and the guided-filter targets;
- ``estimator``: ``DepthEstimation``, MiDaS-style training of a base estimator; ``nets``: ``SmallDepthNet``;
- ``scenes`` / ``data``: procedural RGB-D scenes with exact depth, real RGB-D layouts, image folders;
- ``losses`` / ``metrics``: scale-shift-invariant losses, RMSE / AbsRel / depth-edge F1;
- ``callbacks``: ``DepthPanels`` (W&B), ``DepthPNGWriter`` (16-bit PNGs); ``experiment``: the measured effect.
"""

from __future__ import annotations

import importlib
from typing import Any

# names load their module on first use, so that ``lit_digest.depth.nets`` or ``.scenes`` import no Lightning
_EXPORTS: dict[str, str] = {
    # the function ``boost`` stays ``lit_digest.depth.boost.boost``: the name here is the subpackage
    **dict.fromkeys(["BoostSettings", "DepthMerge", "MergeUNet", "PatchDiscriminator"], "lit_digest.depth.boost"),
    **dict.fromkeys(["DepthPanels", "DepthPNGWriter"], "lit_digest.depth.callbacks"),
    **dict.fromkeys(["ProceduralRGBDDataModule", "RGBDFolderDataModule"], "lit_digest.depth.data"),
    "DepthEstimation": "lit_digest.depth.estimator",
    "SmallDepthNet": "lit_digest.depth.nets",
}

__all__ = ["DepthMerge", "DepthEstimation", "SmallDepthNet", "MergeUNet", "PatchDiscriminator", "BoostSettings",
           "ProceduralRGBDDataModule", "RGBDFolderDataModule", "DepthPanels", "DepthPNGWriter"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lit_digest.depth' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
