"""GenRep: contrastive learning from a generator's latent space (Jahanian et al., "Generative Models as a Data
Source for Multiview Representation Learning", arXiv 2106.05258; official code ali-design/GenRep).

Positive pairs are two images rendered from nearby latent codes, ``G(z)`` and ``G(z + w)``, each then
pixel-augmented; negatives are the other samples of the batch; with a class-conditional generator every
same-class sample can be a positive (SupCon). The SSL domain's ``SimCLR`` and ``SupCon`` train on these views
unchanged, and are evaluated on real images.

- ``walk``: ``LatentWalk``, the truncated-normal anchors and the Gaussian walk of scale sigma;
- ``data``: ``GeneratedViewsDataModule``, views from any frozen generator (online on the device, or a fixed data
  set pre-generated to disk as the paper does), real images for evaluation;
- ``dcgan``: ``DCGANGenerator`` / ``DCGANDiscriminator`` / ``DCGAN``, the small generator trained here, since
  no pretrained BigGAN or StyleGAN can be downloaded;
- ``experiment``: the one command behind docs/genrep.md (``python -m lit_digest.ssl.genrep.experiment``).
"""

from lit_digest.ssl.genrep.data import GeneratedViewsDataModule, load_generator
from lit_digest.ssl.genrep.dcgan import DCGAN, DCGANDiscriminator, DCGANGenerator, GeneratorSamples
from lit_digest.ssl.genrep.walk import LatentWalk, truncated_normal

__all__ = ["GeneratedViewsDataModule", "LatentWalk", "truncated_normal", "load_generator", "DCGAN",
           "DCGANGenerator", "DCGANDiscriminator", "GeneratorSamples"]
