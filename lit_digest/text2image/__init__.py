"""Text to image: VQGAN+CLIP (Crowson et al., arXiv 2204.08583) and the two models it steers with.

- ``vqgan/``: VQGAN training (Esser et al., arXiv 2012.09841) around diffusers' ``VQModel``, taming's losses,
  and taming / latent-diffusion checkpoints converted for diffusers;
- ``clip/``: a small CLIP (Radford et al., arXiv 2103.00020) built on open_clip;
- ``generate/``: the generation loop (``VQGANCLIP``, ``predict``) and its prompts;
- ``scenes``, ``data``: procedural captioned scenes (and a folder of the user's) for both models;
- ``classifier``: the attribute classifier that judges generated scenes (``experiment``).

open_clip, diffusers and kornia are the optional extra ``text2image``; they load when a class is built.
"""

from lit_digest.text2image.classifier import SceneAttributeClassifier
from lit_digest.text2image.clip import CLIPModule
from lit_digest.text2image.data import CaptionedFolderDataModule, SceneDataModule
from lit_digest.text2image.generate import VQGANCLIP, Augment, PromptDataModule
from lit_digest.text2image.vqgan import VQGANModule

__all__ = ["VQGANModule", "CLIPModule", "VQGANCLIP", "Augment", "PromptDataModule", "SceneDataModule",
           "CaptionedFolderDataModule", "SceneAttributeClassifier"]
