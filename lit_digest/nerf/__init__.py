"""Stylised novel views: a NeRF whose appearance is predicted from a style image (Chiang et al., "Stylizing 3D
Scene via Implicit Representation and HyperNetwork", WACV 2022, arXiv 2105.13016).

- ``NeRF`` (stage 1): a radiance field (``RadianceField``: coarse and fine ``NeRFMLP``, hierarchical sampling,
  NeRF++'s background) fitted to posed images;
- ``StyleNeRF`` (stage 2): its density frozen, the colour layers predicted by a ``StyleHyperNetwork`` from a
  style image's features, trained on patches of rays with content and style losses;
- ``rendering``: rays, positional encoding, volume rendering, hierarchical sampling, NDC, the inverted sphere;
- ``data`` / ``loaders``: ``ProceduralSceneDataModule`` (offline scenes with exact depth), ``BlenderDataModule``,
  ``LLFFDataModule``; ``features``: the perceptual features (VGG-16, or ``StyleFeatureNet`` trained here);
- ``callbacks``: ``NeRFPanels`` (W&B), ``RenderWriter`` (frames, GIF, 16-bit depth); ``experiment``: the
  measured command; ``consistency``: the warping error; ``adain``: the per-frame 2D baseline.
"""

from __future__ import annotations

import importlib
from typing import Any

# names load their module on first use: ``lit_digest.nerf.rendering`` imports no Lightning
_EXPORTS: dict[str, str] = {
    "NeRF": "lit_digest.nerf.system",
    "StyleNeRF": "lit_digest.nerf.stylize",
    **dict.fromkeys(["RadianceField", "NeRFMLP"], "lit_digest.nerf.field"),
    "StyleHyperNetwork": "lit_digest.nerf.hyper",
    **dict.fromkeys(["ProceduralSceneDataModule", "BlenderDataModule", "LLFFDataModule"], "lit_digest.nerf.loaders"),
    "SceneDataModule": "lit_digest.nerf.data",
    **dict.fromkeys(["StyleFeatureNet", "load_style_features"], "lit_digest.nerf.features"),
    **dict.fromkeys(["NeRFPanels", "RenderWriter"], "lit_digest.nerf.callbacks"),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lit_digest.nerf' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
