"""VQGAN training (taming-transformers' losses around diffusers' VQModel) and pretrained-checkpoint conversion."""

from lit_digest.text2image.vqgan.convert import convert_taming_state_dict, load_taming_vqgan, taming_config
from lit_digest.text2image.vqgan.losses import NLayerDiscriminator, adaptive_weight, feature_distance, hinge_d_loss
from lit_digest.text2image.vqgan.module import VQGANModule, bicubic_baseline, build_vqmodel, downsampling

__all__ = ["VQGANModule", "build_vqmodel", "downsampling", "bicubic_baseline", "NLayerDiscriminator",
           "adaptive_weight", "feature_distance", "hinge_d_loss", "convert_taming_state_dict", "load_taming_vqgan",
           "taming_config"]
