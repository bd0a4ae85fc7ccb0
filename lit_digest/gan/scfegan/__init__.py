"""SC-FEGAN (Jo & Park, arXiv 1902.06838): face editing from the user's mask, sketch and colour.

``SCFEGAN`` (the LightningModule), ``SCFEGANGenerator`` (the gated U-net), the callbacks ``EditingPanels`` and
``InpaintingReport``, and ``predict`` (edit an image from PNG inputs: ``python -m lit_digest.gan.scfegan.predict``).
"""

from lit_digest.gan.scfegan.callbacks import EditingPanels, InpaintingReport, held_out_masked_l1
from lit_digest.gan.scfegan.generator import SCFEGANGenerator, compose, scfegan_input
from lit_digest.gan.scfegan.module import SCFEGAN

__all__ = ["SCFEGAN", "SCFEGANGenerator", "EditingPanels", "InpaintingReport", "held_out_masked_l1", "compose",
           "scfegan_input"]
