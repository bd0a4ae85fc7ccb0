"""Every LightningModule lit_digest ships, built with its defaults beside its DataModule with defaults: the pairs
the contract test (``tests/test_contract.py``) trains for a few steps on a CPU, checkpoints, and loads back with
``load_from_checkpoint(path)`` alone. A method missing here fails ``test_every_method_has_a_contract_case``.

``CASES[name]`` is a function returning ``(module, datamodule)``; use defaults, and pass an argument only where
the method has no sensible default (say why in a comment).
"""

from __future__ import annotations

CASES: dict = {}


def _author_attribution():
    from lit_digest.text.authors import AuthorAttribution, LabelledTextDataModule

    return AuthorAttribution(), LabelledTextDataModule()


def _controlled_lm():
    from lit_digest.text.authors import ControlledLM, LabelledTextDataModule

    # the one DataModule serves passages (attribution, its default) or control-prefixed windows (the LM)
    return ControlledLM(), LabelledTextDataModule(batches="lm")


CASES["AuthorAttribution"] = _author_attribution
CASES["ControlledLM"] = _controlled_lm


def _nerf():
    from lit_digest.nerf import NeRF, ProceduralSceneDataModule

    return NeRF(), ProceduralSceneDataModule()


def _style_nerf():
    from lit_digest.nerf import ProceduralSceneDataModule, StyleNeRF

    # stage 2 trains on patches of rays with a style image, the DataModule's other kind of batch
    return StyleNeRF(), ProceduralSceneDataModule(batches="patches")


CASES["NeRF"] = _nerf
CASES["StyleNeRF"] = _style_nerf
