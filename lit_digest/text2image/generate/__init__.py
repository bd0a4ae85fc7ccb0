"""VQGAN+CLIP generation: prompts, cutouts, the models from files, the LightningModule and its prompt DataModule."""

from lit_digest.text2image.generate.cutouts import Augment, MakeCutouts, straight_through_quantize
from lit_digest.text2image.generate.data import PromptDataModule
from lit_digest.text2image.generate.models import TextImageModel, load_clip, load_vqgan
from lit_digest.text2image.generate.module import VQGANCLIP
from lit_digest.text2image.generate.prompts import Prompt, parse_prompt, parse_prompts, prompt_loss, spherical_distance

__all__ = ["VQGANCLIP", "PromptDataModule", "Augment", "MakeCutouts", "straight_through_quantize", "TextImageModel",
           "load_clip", "load_vqgan", "Prompt", "parse_prompt", "parse_prompts", "prompt_loss", "spherical_distance"]
