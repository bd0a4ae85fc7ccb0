"""Every LightningModule lit_digest ships, built with its defaults beside its DataModule with defaults: the pairs
the contract test (``tests/test_contract.py``) trains for a few steps on a CPU, checkpoints, and loads back with
``load_from_checkpoint(path)`` alone. A method missing here fails ``test_every_method_has_a_contract_case``.

``CASES[name]`` is a function returning ``(module, datamodule)``; use defaults, and pass an argument only where
the method has no sensible default (say why in a comment).
"""

from __future__ import annotations

CASES: dict = {}

def _ganroses():
    from lit_digest.gan.ganroses import GANsNRoses, PhotosToDrawingsDataModule

    # photos=None: grey drawn faces stand in for the AT&T photos (the default data/att_faces may be absent)
    return GANsNRoses(), PhotosToDrawingsDataModule(photos=None)


CASES["GANsNRoses"] = _ganroses
